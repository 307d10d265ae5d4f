"""Pack the training code of the layer into sourcedir.tar.gz and upload it once per content hash.

SageMaker's script mode downloads ``sagemaker_submit_directory`` into /opt/ml/code, and the training
toolkit pip-installs a ``requirements.txt`` it finds there before it runs the entry point. No job may
depend on a package index at start (an index hiccup fails the job; a VPC without NAT or network
isolation fails every job), so there are two source dirs:

- ``plain`` (the features job and the tuning trials): the entry points (features.py, hpo.py,
  train_model.py, inference.py) and the dogclf package, and no requirements.txt: the toolkit installs
  nothing and the scripts run on the image's own packages.
- ``profiled`` (train_model.py, which imports smdebug, not in the SageMaker PyTorch images): the
  same plus ``wheels/`` (training/wheels/, built by ``make training-wheels`` for the image's platform)
  and a ``requirements.txt`` that is training/requirements.txt behind ``--no-index --find-links
  wheels``: pip resolves a relative --find-links in a requirements file against that file's folder,
  so the toolkit's install reads only the shipped wheels.

requirements-dev.txt (pytest) never goes in. Each archive is deterministic (sorted, fixed
mtimes/owners), named by the hash of its file names and contents, and uploaded only once.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from pipeline.adapters.s3 import S3Store

ENTRY_POINTS = ("hpo.py", "train_model.py", "inference.py", "features.py")
REQUIREMENTS = "requirements.txt"  # at the source dir root, where the toolkit looks for it
PACKAGE = "dogclf"
WHEELS = "wheels"  # training/wheels/ (make training-wheels), shipped as <source dir>/wheels/
CODE_PREFIX = "code/"
PLAIN, PROFILED = "plain", "profiled"
# Prepended to training/requirements.txt in the profiled source dir: the shipped wheels or nothing.
OFFLINE_REQUIREMENTS_HEADER = (
    "# Installed by the training toolkit at job start, from the wheels shipped here only.\n"
    f"--no-index\n--find-links {WHEELS}\n"
)
GZIP_LEVEL = 6  # the wheels are compressed already: level 9 only costs the Lambda time
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")


@dataclass(frozen=True)
class SourceFile:
    """One archive member: its path in the source dir and where its bytes come from."""

    name: str
    path: Path | None = None  # a file of the training code dir
    content: bytes | None = None  # generated (the profiled requirements.txt)

    def read(self) -> bytes:
        if self.content is not None:
            return self.content
        assert self.path is not None
        return self.path.read_bytes()


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def pinned_requirements(requirements: Path) -> dict[str, str]:
    """``name==version`` pins of a requirements file (normalised name -> version)."""
    pins: dict[str, str] = {}
    for line in requirements.read_text().splitlines():
        match = _PIN.match(line.strip())
        if match:
            pins[_normalise(match.group(1))] = match.group(2)
    return pins


def shipped_wheels(training_code_dir: Path) -> list[Path]:
    """The wheels in training/wheels/ for training/requirements.txt's pins, one per pin.

    FileNotFoundError names what is missing (the wheels are a build output: ``make training-wheels``,
    which ``make sam-build`` runs first); a wheel that no pin names is refused too, so the source dir
    ships exactly what the requirements install."""
    pins = pinned_requirements(training_code_dir / REQUIREMENTS)
    wheel_dir = training_code_dir / WHEELS
    wheels = sorted(wheel_dir.glob("*.whl")) if wheel_dir.is_dir() else []
    found: dict[str, Path] = {}
    for wheel in wheels:
        name, version = wheel.name.split("-")[:2]
        if pins.get(_normalise(name)) != version:
            raise FileNotFoundError(f"{wheel} is not pinned by {training_code_dir / REQUIREMENTS}")
        found[_normalise(name)] = wheel
    missing = sorted(f"{name}=={version}" for name, version in pins.items() if name not in found)
    if missing:
        raise FileNotFoundError(
            f"{wheel_dir} lacks wheels for {', '.join(missing)}: build them with `make training-wheels`"
        )
    return [found[name] for name in sorted(found)]


def source_files(training_code_dir: Path, variant: str = PLAIN) -> list[SourceFile]:
    """The members of the ``variant`` source dir, sorted by name."""
    if variant not in (PLAIN, PROFILED):
        raise ValueError(f"unknown source dir variant {variant!r}")
    missing = [name for name in ENTRY_POINTS if not (training_code_dir / name).is_file()]
    if variant == PROFILED and not (training_code_dir / REQUIREMENTS).is_file():
        missing.append(REQUIREMENTS)
    if missing:
        raise FileNotFoundError(f"training code at {training_code_dir} lacks {', '.join(missing)}")
    files = [SourceFile(name, training_code_dir / name) for name in ENTRY_POINTS]
    package = training_code_dir / PACKAGE
    for path in sorted(package.rglob("*")) if package.is_dir() else []:
        relative = path.relative_to(training_code_dir)
        if not path.is_file() or "__pycache__" in relative.parts or path.suffix in (".pyc", ".pyo"):
            continue
        if path.name.startswith("requirements") and path.suffix == ".txt":
            continue  # a requirements file inside the package is never the job's
        files.append(SourceFile(relative.as_posix(), path))
    if variant == PROFILED:
        requirements = OFFLINE_REQUIREMENTS_HEADER.encode() + (training_code_dir / REQUIREMENTS).read_bytes()
        files.append(SourceFile(REQUIREMENTS, content=requirements))
        files += [SourceFile(f"{WHEELS}/{wheel.name}", wheel) for wheel in shipped_wheels(training_code_dir)]
    return sorted(files, key=lambda member: member.name)


def pack(training_code_dir: Path, variant: str = PLAIN) -> tuple[bytes, str]:
    """(sourcedir.tar.gz bytes, sha256 of the file names and contents)."""
    digest = hashlib.sha256()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in source_files(training_code_dir, variant):
            content = member.read()
            digest.update(member.name.encode() + b"\0" + content + b"\0")
            info = tarfile.TarInfo(member.name)
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    compressed = gzip.compress(raw.getvalue(), compresslevel=GZIP_LEVEL, mtime=0)
    return compressed, digest.hexdigest()


def write_tree(training_code_dir: Path, out_dir: Path, variant: str = PLAIN) -> Path:
    """The ``variant`` source dir as a folder, the same members pack() archives: what a SageMaker SDK
    estimator's or model's ``source_dir`` takes, so that a job or endpoint started from a notebook
    installs the profiled job's requirements from the shipped wheels, with no package index."""
    for member in source_files(training_code_dir, variant):
        target = out_dir / member.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(member.read())
    return out_dir


def content_hash(training_code_dir: Path, variant: str = PLAIN) -> str:
    """pack()'s hash without building the archive (the profiled one carries megabytes of wheels)."""
    digest = hashlib.sha256()
    for member in source_files(training_code_dir, variant):
        digest.update(member.name.encode() + b"\0" + member.read() + b"\0")
    return digest.hexdigest()


def ensure_uploaded(training_code_dir: Path, store: S3Store, bucket: str, variant: str = PLAIN) -> str:
    """S3 URI of the ``variant`` sourcedir.tar.gz of the current training code, uploaded if new."""
    key = f"{CODE_PREFIX}{content_hash(training_code_dir, variant)[:16]}/sourcedir.tar.gz"
    if not store.exists(bucket, key):
        archive, _ = pack(training_code_dir, variant)
        store.put_bytes(bucket, key, archive, "application/gzip")
    return f"s3://{bucket}/{key}"
