"""sourcedir.tar.gz packing: the job's requirements.txt goes in at the root, nothing else named so."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pytest
from fn_support import TRAINING_DIR

from pipeline.source_dir import pack


def _members(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def _fake_training_dir(root: Path) -> Path:
    for name in ("features.py", "hpo.py", "train_model.py", "inference.py"):
        (root / name).write_text(f"# {name}\n")
    (root / "dogclf").mkdir()
    (root / "dogclf" / "__init__.py").write_text("")
    (root / "requirements.txt").write_text("smdebug==1.0.34\n")
    (root / "requirements-dev.txt").write_text("-r requirements.txt\npytest\n")
    (root / "dogclf" / "requirements.txt").write_text("torch\n")  # never the job's
    return root


def test_the_repo_source_dir_ships_training_requirements_as_requirements_txt() -> None:
    members = _members(pack(TRAINING_DIR)[0])
    assert members["requirements.txt"] == (TRAINING_DIR / "requirements.txt").read_bytes()
    assert b"smdebug==" in members["requirements.txt"]
    assert "requirements-dev.txt" not in members


def test_only_the_root_requirements_txt_goes_in(tmp_path: Path) -> None:
    members = _members(pack(_fake_training_dir(tmp_path))[0])
    assert sorted(members) == [
        "dogclf/__init__.py",
        "features.py",
        "hpo.py",
        "inference.py",
        "requirements.txt",
        "train_model.py",
    ]
    assert members["requirements.txt"] == b"smdebug==1.0.34\n"


def test_requirements_change_the_content_hash(tmp_path: Path) -> None:
    root = _fake_training_dir(tmp_path)
    _, before = pack(root)
    (root / "requirements.txt").write_text("smdebug==1.0.34\nprotobuf==3.20.3\n")
    assert pack(root)[1] != before


def test_missing_requirements_is_a_clear_error(tmp_path: Path) -> None:
    root = _fake_training_dir(tmp_path)
    (root / "requirements.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"requirements\.txt"):
        pack(root)


def test_real_training_dir_copy_without_requirements_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "training"
    shutil.copytree(TRAINING_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", "requirements*.txt"))
    with pytest.raises(FileNotFoundError, match=r"requirements\.txt"):
        pack(copy)


def test_the_features_entry_point_is_required(tmp_path: Path) -> None:
    """The features job runs features.py from the same source dir: packing without it is an error."""
    root = _fake_training_dir(tmp_path)
    (root / "features.py").unlink()
    with pytest.raises(FileNotFoundError, match=r"features\.py"):
        pack(root)
