"""The container-faithful Python environments: the base image's interpreter and per-requirements overlays.

The base (``.venv-container``, built by ``make venvs`` from ``container/requirements.txt``) plays the
SageMaker PyTorch training and inference images: the same Python minor version, torch, torchvision and
AWS toolkits, and no smdebug. What the profiled job needs beyond the image ships with it as the source
dir's ``requirements.txt`` and the wheels it names; the toolkit pip-installs them at job start, with no
package index (``OFFLINE_PIP_ENVIRONMENT`` makes every job's pip run so). Locally that install goes into an
*overlay*: a second venv whose site-packages holds a ``.pth`` line that adds the base's site-packages.
The overlay's packages shadow the base's, pip in the overlay never touches the base, and the overlay is
cached by the requirements' content, so only the first job with new requirements pays the install.

Stdlib only: the Makefile runs this module with the base interpreter itself
(``.venv-container/bin/python -m localcloud.environment.containerenv ...``).
"""

from __future__ import annotations

import argparse
import fcntl
import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTAINER_PYTHON_ENV = "LOCALCLOUD_CONTAINER_PYTHON"  # override of the base interpreter
OVERLAY_DIR_ENV = "LOCALCLOUD_OVERLAY_DIR"  # override of where cached overlays live
DEFAULT_BASE_VENV = REPO_ROOT / ".venv-container"
DEFAULT_OVERLAY_DIR = REPO_ROOT / ".venv-overlays"
COMPLETE_MARKER = ".overlay-complete"  # written last: an overlay without it is rebuilt
PTH_NAME = "_container_base.pth"

Log = Callable[[str], None]


# No job reaches a package index (docs/deploy.md, "Job start-up"): pip in a job, the toolkit's or the
# overlay build's, gets a dead index and no config files (this machine's pip.conf and $PIP_FIND_LINKS
# name local mirrors a training instance would not have). A requirement that is not shipped with the
# job then fails at once, as it would in a VPC without NAT; --no-index --find-links <dir> still works.
OFFLINE_PIP_ENVIRONMENT = {
    "PIP_CONFIG_FILE": os.devnull,
    "PIP_INDEX_URL": "http://127.0.0.1:9/simple",  # the discard port: refused at once
    "PIP_NO_INDEX": "1",
    "PIP_RETRIES": "0",
    "PIP_DEFAULT_TIMEOUT": "2",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
}


def offline_environment() -> dict[str, str]:
    """A training job's environment: this process's without SageMaker's, the endpoints' or pip's own
    variables, plus OFFLINE_PIP_ENVIRONMENT."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SM_", "SAGEMAKER_", "AWS_ENDPOINT_URL", "PIP_"))
    }
    return {**env, **OFFLINE_PIP_ENVIRONMENT}


class ContainerEnvError(RuntimeError):
    """The base environment is missing or an overlay could not be built (a setup problem, not transient)."""


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def base_python() -> Path:
    """The interpreter of the base environment that plays the SageMaker PyTorch images."""
    override = os.environ.get(CONTAINER_PYTHON_ENV)
    python = Path(override) if override else DEFAULT_BASE_VENV / "bin" / "python"
    if not python.exists():
        where = f"${CONTAINER_PYTHON_ENV}={override}" if override else str(python)
        raise ContainerEnvError(
            f"container base interpreter not found: {where}. Build it with `make venvs` "
            f"(or `make .venv-container/.stamp`), or point ${CONTAINER_PYTHON_ENV} at one."
        )
    return python


@functools.lru_cache(maxsize=8)
def site_packages(python: Path) -> Path:
    """The purelib site-packages directory of the venv that `python` belongs to."""
    try:
        out = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise ContainerEnvError(f"cannot ask {python} for its site-packages: {exc}") from exc
    return Path(out)


_INCLUDE = re.compile(r"^\s*(?:-r|--requirement)[\s=]+(\S+)")


def requirements_digest(requirements: Path, base: Path) -> str:
    """sha256 over the requirements (with the files they include via -r) and the base interpreter."""
    h = hashlib.sha256()
    h.update(str(base).encode())

    def feed(path: Path, depth: int) -> None:
        if depth > 10:
            raise ContainerEnvError(f"requirements include loop at {path}")
        text = path.read_text()
        h.update(b"\0" + text.encode())
        for line in text.splitlines():
            m = _INCLUDE.match(line)
            if m:
                feed((path.parent / m.group(1)).resolve(), depth + 1)

    if not requirements.is_file():
        raise ContainerEnvError(f"requirements file not found: {requirements}")
    feed(requirements.resolve(), 0)
    return h.hexdigest()


def overlay_dir() -> Path:
    override = os.environ.get(OVERLAY_DIR_ENV)
    return Path(override) if override else DEFAULT_OVERLAY_DIR


def overlay_python(
    requirements: Path,
    *,
    base: Path | None = None,
    root: Path | None = None,
    log: Log = _stderr,
    env: dict[str, str] | None = None,
) -> Path:
    """The python of a cached overlay venv over `base` holding `requirements`; built on first use.

    Overlays live in ``<root>/<sha256[:16]>/`` (root: ``.venv-overlays`` or ``$LOCALCLOUD_OVERLAY_DIR``).
    A file lock serialises concurrent builders of the same overlay; the completion marker is written
    last, so an install that was killed half way is redone by the next caller. ``env``: the
    environment pip runs in (default: this process's; a training job passes one without an index).
    """
    base = Path(base) if base else base_python()
    root = Path(root) if root else overlay_dir()
    digest = requirements_digest(Path(requirements), base)[:16]
    dest = root / digest
    python = dest / "bin" / "python"
    if (dest / COMPLETE_MARKER).exists():
        log(f"using cached overlay {digest} for requirements {requirements}")
        return python
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # blocks while another job builds the same overlay
        if (dest / COMPLETE_MARKER).exists():  # the other job finished it
            log(f"using overlay {digest} for requirements {requirements}, built by another job")
            return python
        log(f"building overlay for requirements {digest} ({requirements}) in {dest} ...")
        build_overlay(dest, base, Path(requirements), log=log, env=env)
    return python


def build_overlay(
    dest: Path,
    base: Path,
    requirements: Path,
    *,
    log: Log = _stderr,
    env: dict[str, str] | None = None,
    editable: tuple[Path, ...] = (),
) -> Path:
    """(Re)build the overlay venv at `dest` over `base` and pip-install `requirements` into it, then
    the `editable` projects (``pip install --no-deps -e``: .venv-training's dogclf, pipeline and the
    repository root; a job's overlay has none)."""
    started = time.monotonic()
    if dest.exists():
        shutil.rmtree(dest)  # a half-built overlay (no marker) from a killed install
    python = dest / "bin" / "python"
    try:
        # --without-pip: the overlay runs the base's pip through the .pth line; pip installs into the
        # running interpreter's prefix (the overlay) and leaves the base's distributions alone.
        _run([str(base), "-m", "venv", "--without-pip", str(dest)], log)
        base_site = site_packages(base)
        own_site = site_packages(python)
        (own_site / PTH_NAME).write_text(f"import site; site.addsitedir({str(base_site)!r})\n")
        pip = [str(python), "-m", "pip", "install", "--no-warn-conflicts", "-q"]
        _run([*pip, "-r", str(requirements.resolve())], log, env)
        if editable:
            _run([*pip, "--no-deps", *[f"--editable={p.resolve()}" for p in editable]], log, env)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)  # nothing half-built is left to be mistaken for done
        raise
    (dest / COMPLETE_MARKER).write_text(f"{requirements}\nbase={base}\n")
    log(f"overlay {dest.name} ready in {time.monotonic() - started:.0f} s")
    return python


def _run(cmd: list[str], log: Log, env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-20:]
        for line in tail:
            log(line)
        raise ContainerEnvError(f"{' '.join(cmd)} failed with exit code {proc.returncode}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m localcloud.environment.containerenv", description=__doc__
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_cached = sub.add_parser("overlay", help="build (or find) the cached overlay for a requirements file")
    p_cached.add_argument("requirements", type=Path)
    p_at = sub.add_parser("build", help="build an overlay at a fixed path (e.g. .venv-training)")
    p_at.add_argument("requirements", type=Path)
    p_at.add_argument("--dest", type=Path, required=True)
    p_at.add_argument(
        "--editable", type=Path, action="append", default=[], help="a project to install editable (repeat)"
    )
    args = parser.parse_args(argv)
    if args.cmd == "overlay":
        print(overlay_python(args.requirements))
    else:
        print(
            build_overlay(
                args.dest.absolute(), base_python(), args.requirements, editable=tuple(args.editable)
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
