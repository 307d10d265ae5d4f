"""Pack the training code of the layer into sourcedir.tar.gz and upload it once per content hash.

SageMaker's script mode downloads ``sagemaker_submit_directory`` into /opt/ml/code. In go the entry
points (features.py, hpo.py, train_model.py, inference.py), the dogclf package and
``requirements.txt`` (training/requirements.txt: smdebug and the pins it needs next to the image's
packages, nothing the image already has). The training toolkit pip-installs
that file before it runs the entry point; without it the profiled job dies importing smdebug, which
the SageMaker PyTorch images do not ship. requirements-dev.txt (pytest) never goes in. The archive is
deterministic (sorted, fixed mtimes/owners) so the same code always hashes the same and is uploaded
only once.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

from pipeline.adapters.s3 import ObjectStore

ENTRY_POINTS = ("hpo.py", "train_model.py", "inference.py", "features.py")
REQUIREMENTS = "requirements.txt"  # at the source dir root, where the toolkit looks for it
PACKAGE = "dogclf"
CODE_PREFIX = "code/"


def source_files(training_code_dir: Path) -> list[Path]:
    """The files that go into the source dir, relative to training_code_dir, sorted."""
    required = (*ENTRY_POINTS, REQUIREMENTS)
    files = [Path(name) for name in required if (training_code_dir / name).is_file()]
    package = training_code_dir / PACKAGE
    for path in sorted(package.rglob("*")) if package.is_dir() else []:
        relative = path.relative_to(training_code_dir)
        if not path.is_file() or "__pycache__" in relative.parts or path.suffix in (".pyc", ".pyo"):
            continue
        if path.name.startswith("requirements") and path.suffix == ".txt":
            continue  # only the root requirements.txt is the job's; none from inside the package
        files.append(relative)
    missing = [name for name in required if Path(name) not in files]
    if missing:
        raise FileNotFoundError(f"training code at {training_code_dir} lacks {', '.join(missing)}")
    return sorted(files)


def pack(training_code_dir: Path) -> tuple[bytes, str]:
    """(sourcedir.tar.gz bytes, sha256 of the file names and contents)."""
    digest = hashlib.sha256()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for relative in source_files(training_code_dir):
            content = (training_code_dir / relative).read_bytes()
            digest.update(relative.as_posix().encode() + b"\0" + content + b"\0")
            info = tarfile.TarInfo(relative.as_posix())
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    compressed = gzip.compress(raw.getvalue(), mtime=0)
    return compressed, digest.hexdigest()


def ensure_uploaded(training_code_dir: Path, store: ObjectStore, bucket: str) -> str:
    """S3 URI of sourcedir.tar.gz for the current training code, uploading it if this hash is new."""
    archive, content_hash = pack(training_code_dir)
    key = f"{CODE_PREFIX}{content_hash[:16]}/sourcedir.tar.gz"
    if not store.exists(bucket, key):
        store.put_bytes(bucket, key, archive, "application/gzip")
    return f"s3://{bucket}/{key}"
