"""sourcedir.tar.gz packing: the plain source dir (features job, trials) has no requirements.txt; the
profiled one ships training/requirements.txt behind --no-index with one wheel per pin, nothing else."""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import pytest
from fn_support import TRAINING_DIR

from pipeline.source_dir import PLAIN, PROFILED, content_hash, pack, write_tree

SCRIPTS = ["dogclf/__init__.py", "features.py", "hpo.py", "inference.py", "train_model.py"]
NO_INDEX_HEADER = b"# Installed by the training toolkit at job start, from the wheels shipped here only.\n"
NO_INDEX_HEADER += b"--no-index\n--find-links wheels\n"


def _members(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def _fake_training_dir(
    root: Path, wheels: tuple[str, ...] = ("smdebug-1.0.34-py2.py3-none-any.whl",)
) -> Path:
    for name in ("features.py", "hpo.py", "train_model.py", "inference.py"):
        (root / name).write_text(f"# {name}\n")
    (root / "dogclf").mkdir()
    (root / "dogclf" / "__init__.py").write_text("")
    (root / "requirements.txt").write_text("# the job's\nsmdebug==1.0.34\n")
    (root / "requirements-dev.txt").write_text("-r requirements.txt\npytest\n")
    (root / "dogclf" / "requirements.txt").write_text("torch\n")  # never the job's
    (root / "wheels").mkdir()
    for wheel in wheels:
        (root / "wheels" / wheel).write_bytes(b"wheel " + wheel.encode())
    return root


def test_the_plain_source_dir_has_no_requirements_and_no_wheels(tmp_path: Path) -> None:
    """The features job and the trials: the toolkit finds nothing to pip-install."""
    members = _members(pack(_fake_training_dir(tmp_path), PLAIN)[0])
    assert sorted(members) == SCRIPTS


def test_the_profiled_source_dir_installs_only_its_own_wheels(tmp_path: Path) -> None:
    members = _members(pack(_fake_training_dir(tmp_path), PROFILED)[0])
    assert sorted(members) == sorted(
        [*SCRIPTS, "requirements.txt", "wheels/smdebug-1.0.34-py2.py3-none-any.whl"]
    )
    assert members["requirements.txt"] == NO_INDEX_HEADER + b"# the job's\nsmdebug==1.0.34\n"


def test_the_repo_profiled_source_dir_has_a_wheel_for_every_pin() -> None:
    """training/wheels/ (make training-wheels) against training/requirements.txt, read here on its own."""
    members = _members(pack(TRAINING_DIR, PROFILED)[0])
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", (TRAINING_DIR / "requirements.txt").read_text(), re.M)
    assert {name.replace("-", "_").lower() for name, _ in pins} >= {"smdebug", "numpy", "pyinstrument_cext"}
    wheels = sorted(name.removeprefix("wheels/") for name in members if name.startswith("wheels/"))
    assert sorted((w.split("-")[0].lower(), w.split("-")[1]) for w in wheels) == sorted(
        (name.replace("-", "_").lower(), version) for name, version in pins
    )
    assert members["requirements.txt"].startswith(NO_INDEX_HEADER)
    assert "requirements-dev.txt" not in members


def test_a_pin_without_its_wheel_is_a_clear_error(tmp_path: Path) -> None:
    root = _fake_training_dir(tmp_path, wheels=())
    with pytest.raises(FileNotFoundError, match=r"lacks wheels for smdebug==1\.0\.34.*make training-wheels"):
        pack(root, PROFILED)
    assert sorted(_members(pack(root, PLAIN)[0])) == SCRIPTS  # the plain source dir needs none


def test_a_wheel_of_another_version_is_refused(tmp_path: Path) -> None:
    root = _fake_training_dir(tmp_path, wheels=("smdebug-1.0.33-py2.py3-none-any.whl",))
    with pytest.raises(FileNotFoundError, match=r"smdebug-1\.0\.33.*is not pinned"):
        pack(root, PROFILED)


def test_the_two_variants_hash_apart_and_content_hash_agrees_with_pack(tmp_path: Path) -> None:
    root = _fake_training_dir(tmp_path)
    (_, plain), (_, profiled) = pack(root, PLAIN), pack(root, PROFILED)
    assert plain != profiled
    assert content_hash(root, PLAIN) == plain and content_hash(root, PROFILED) == profiled


def test_requirements_change_the_profiled_hash_only(tmp_path: Path) -> None:
    root = _fake_training_dir(tmp_path)
    plain, profiled = pack(root, PLAIN)[1], pack(root, PROFILED)[1]
    (root / "requirements.txt").write_text("# another comment\nsmdebug==1.0.34\n")
    assert pack(root, PLAIN)[1] == plain
    assert pack(root, PROFILED)[1] != profiled


def test_the_features_entry_point_is_required(tmp_path: Path) -> None:
    """The features job runs features.py from the same source dir: packing without it is an error."""
    root = _fake_training_dir(tmp_path)
    (root / "features.py").unlink()
    with pytest.raises(FileNotFoundError, match=r"features\.py"):
        pack(root)


@pytest.mark.parametrize("variant", [PLAIN, PROFILED])
def test_write_tree_lays_out_exactly_what_pack_archives(tmp_path: Path, variant: str) -> None:
    """The folder an SDK user passes as source_dir holds the uploaded archive's members, byte for byte."""
    (tmp_path / "training").mkdir()
    training = _fake_training_dir(tmp_path / "training")
    out = write_tree(training, tmp_path / "out", variant)
    written = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert written == _members(pack(training, variant)[0])
    if variant == PROFILED:
        assert written["requirements.txt"].startswith(NO_INDEX_HEADER)
        assert "wheels/smdebug-1.0.34-py2.py3-none-any.whl" in written
    else:
        assert "requirements.txt" not in written
