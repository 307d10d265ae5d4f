"""Which backbone weights the local demo trains with: ImageNet when torchvision's file can be had.

The local training jobs inherit the demo's environment, so they read the same torch hub cache
(``$TORCH_HOME/hub/checkpoints``, torch's own rule) and find the file the demo checked or fetched.
The demo's interpreter (.venv) has no torch, so the cache rule is repeated here;
tests/training/test_imagenet_weights_cache.py checks it against torch.hub and torchvision.

``--weights``:
- ``auto`` (the demo's default): ImageNet if the file is in the cache, else a random-init backbone
  with a plain note. Never touches the network.
- ``imagenet``: the cache, else one download attempt with a short timeout; if neither works the
  demo stops before starting anything (``WeightsUnavailableError``, its own exit code).
- ``none``: random init, as the demo always did.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from dogclf import contract

WEIGHTS_CHOICES = ("auto", "imagenet", "none")
DOWNLOAD_TIMEOUT_S = 10.0  # per connect/read: an offline machine fails at once, a slow link still works
# torchvision names checkpoints <name>-<first hex digits of the file's sha256>.pth (torch.hub.HASH_REGEX)
_HASH_IN_NAME = re.compile(r"-([a-f0-9]*)\.")


class WeightsUnavailableError(RuntimeError):
    """--weights imagenet was asked for and the file is neither cached nor downloadable."""


@dataclass(frozen=True)
class WeightsChoice:
    weights: str  # the PretrainedWeights parameter: "imagenet" or "none"
    note: str  # one line for the demo's progress output


def torch_hub_dir(environ: Mapping[str, str] | None = None) -> Path:
    """torch.hub.get_dir() without torch: $TORCH_HOME/hub, TORCH_HOME defaulting to $XDG_CACHE_HOME/torch
    and XDG_CACHE_HOME to ~/.cache."""
    env = os.environ if environ is None else environ
    cache = env.get("XDG_CACHE_HOME", "~/.cache")
    home = env.get("TORCH_HOME", os.path.join(cache, "torch"))  # noqa: PTH118 (torch's own expression)
    return Path(os.path.expanduser(home)) / "hub"  # noqa: PTH111


def imagenet_checkpoint(environ: Mapping[str, str] | None = None) -> Path:
    """Where torchvision looks for (and saves) the ResNet18 ImageNet weights."""
    filename = contract.RESNET18_IMAGENET_URL.rsplit("/", 1)[-1]
    return torch_hub_dir(environ) / "checkpoints" / filename


def download_checkpoint(url: str, destination: Path, timeout_s: float = DOWNLOAD_TIMEOUT_S) -> None:
    """Fetch ``url`` to ``destination`` (via a temp file, so no partial file is left behind), checking
    the sha256 prefix in the file's name as torchvision does. Raises OSError (URLError is one)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    expected = _HASH_IN_NAME.search(destination.name)
    digest = hashlib.sha256()
    handle, temp_name = tempfile.mkstemp(dir=destination.parent, prefix=".download-")
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=timeout_s) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if expected and not digest.hexdigest().startswith(expected.group(1)):
            raise OSError(f"{url}: sha256 {digest.hexdigest()[:12]}... does not match {expected.group(1)}")
        temp.replace(destination)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def resolve_weights(
    requested: str,
    environ: Mapping[str, str] | None = None,
    download: Callable[[str, Path], None] = download_checkpoint,
) -> WeightsChoice:
    """The weights the demo's jobs will use for ``--weights requested`` (see the module docstring)."""
    if requested not in WEIGHTS_CHOICES:
        raise ValueError(f"--weights {requested!r}: expected one of {', '.join(WEIGHTS_CHOICES)}")
    if requested == "none":
        return WeightsChoice("none", "backbone: random init (--weights none)")
    checkpoint = imagenet_checkpoint(environ)
    if checkpoint.is_file():
        return WeightsChoice("imagenet", f"backbone: ImageNet ResNet18 weights from {checkpoint}")
    if requested == "auto":
        return WeightsChoice("none", fallback_note(checkpoint))
    url = contract.RESNET18_IMAGENET_URL
    try:
        download(url, checkpoint)
    except (OSError, ValueError) as error:  # URLError/timeouts/HTTP errors are OSErrors
        raise WeightsUnavailableError(
            f"--weights imagenet: the ResNet18 ImageNet weights are not in torchvision's cache "
            f"({checkpoint.parent}) and could not be downloaded from {url} ({error}). Put "
            f"{checkpoint.name} in {checkpoint.parent}, or run with --weights auto or none."
        ) from error
    return WeightsChoice("imagenet", f"backbone: ImageNet ResNet18 weights, downloaded to {checkpoint}")


def fallback_note(checkpoint: Path) -> str:
    """What --weights auto says when it falls back to a random-init backbone."""
    return (
        f"ImageNet weights for ResNet18 are not in torchvision's cache ({checkpoint.parent}; "
        "--weights auto does not download): using a random-init backbone. Accuracy on real photos will "
        f"be low (the synthetic sample still learns); put {checkpoint.name} in {checkpoint.parent} to "
        "use them, or run with --weights imagenet to download it."
    )
