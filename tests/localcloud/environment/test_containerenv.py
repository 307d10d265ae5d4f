"""Per-requirements overlays over the container base: built once, cached, never inside the base.

Uses a tiny hand-made wheel installed with --no-index, so the tests need no network and stay fast.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import threading
import zipfile
from pathlib import Path

import pytest

from localcloud.environment import containerenv
from localcloud.environment.containerenv import (
    COMPLETE_MARKER,
    ContainerEnvError,
    base_python,
    overlay_python,
)


def _wheel(directory: Path, name: str = "tinyoverlaypkg", version: str = "1.0") -> Path:
    """A minimal pure-Python wheel: <name>/__init__.py with VERSION."""
    directory.mkdir(parents=True, exist_ok=True)
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")
    return wheel


def _requirements(tmp_path: Path, lines: str) -> Path:
    wheels = tmp_path / "wheels"
    _wheel(wheels)
    path = tmp_path / "requirements.txt"
    path.write_text(f"--no-index\n--find-links {wheels}\n{lines}")
    return path


def _probe(python: Path, code: str) -> str:
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture(scope="module")
def base() -> Path:
    return base_python()


def test_overlay_holds_the_requirements_and_sees_the_base(tmp_path: Path, base: Path) -> None:
    lines: list[str] = []
    python = overlay_python(
        _requirements(tmp_path, "tinyoverlaypkg==1.0\n"), base=base, root=tmp_path / "ov", log=lines.append
    )
    assert python.parent.parent.parent == tmp_path / "ov"
    assert any(line.startswith("building overlay for requirements") for line in lines)
    seen = _probe(python, "import tinyoverlaypkg, torch, sagemaker_training; print(tinyoverlaypkg.VERSION)")
    assert seen == "1.0"
    # The install went into the overlay, not into the base.
    assert _probe(base, "import importlib.util as u; print(u.find_spec('tinyoverlaypkg'))") == "None"


def test_same_requirements_reuse_the_overlay_and_new_ones_get_their_own(tmp_path: Path, base: Path) -> None:
    requirements = _requirements(tmp_path, "tinyoverlaypkg==1.0\n")
    first = overlay_python(requirements, base=base, root=tmp_path / "ov", log=lambda _: None)
    marker = first.parent.parent / COMPLETE_MARKER
    stamp = marker.stat().st_mtime_ns
    lines: list[str] = []
    assert overlay_python(requirements, base=base, root=tmp_path / "ov", log=lines.append) == first
    assert marker.stat().st_mtime_ns == stamp  # not rebuilt
    assert lines and lines[0].startswith("using cached overlay")

    requirements.write_text(requirements.read_text() + "# changed\n")
    other = overlay_python(requirements, base=base, root=tmp_path / "ov", log=lambda _: None)
    assert other != first


def test_an_overlay_without_its_completion_marker_is_rebuilt(tmp_path: Path, base: Path) -> None:
    requirements = _requirements(tmp_path, "tinyoverlaypkg==1.0\n")
    python = overlay_python(requirements, base=base, root=tmp_path / "ov", log=lambda _: None)
    (python.parent.parent / COMPLETE_MARKER).unlink()  # as if the install had been killed
    lines: list[str] = []
    assert overlay_python(requirements, base=base, root=tmp_path / "ov", log=lines.append) == python
    assert any(line.startswith("building overlay") for line in lines)
    assert (python.parent.parent / COMPLETE_MARKER).is_file()


def test_a_failed_install_raises_and_leaves_nothing_behind(tmp_path: Path, base: Path) -> None:
    requirements = _requirements(tmp_path, "no-such-package-for-overlay-tests==9.9\n")
    with pytest.raises(ContainerEnvError, match="failed with exit code"):
        overlay_python(requirements, base=base, root=tmp_path / "ov", log=lambda _: None)
    assert [p.name for p in (tmp_path / "ov").iterdir() if p.is_dir()] == []


def test_concurrent_jobs_build_one_overlay_once(tmp_path: Path, base: Path) -> None:
    requirements = _requirements(tmp_path, "tinyoverlaypkg==1.0\n")
    lines: list[str] = []
    results: list[Path] = []

    def job() -> None:
        results.append(overlay_python(requirements, base=base, root=tmp_path / "ov", log=lines.append))

    threads = [threading.Thread(target=job) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert len(results) == 3 and len(set(results)) == 1
    assert sum(line.startswith("building overlay") for line in lines) == 1


def test_requirements_digest_follows_included_files(tmp_path: Path, base: Path) -> None:
    (tmp_path / "inner.txt").write_text("a==1\n")
    outer = tmp_path / "outer.txt"
    outer.write_text("-r inner.txt\n")
    before = containerenv.requirements_digest(outer, base)
    (tmp_path / "inner.txt").write_text("a==2\n")
    assert containerenv.requirements_digest(outer, base) != before
    assert containerenv.requirements_digest(
        outer, tmp_path / "other-python"
    ) != containerenv.requirements_digest(outer, base)


def test_missing_base_says_how_to_build_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(containerenv.CONTAINER_PYTHON_ENV, str(tmp_path / "nope" / "python"))
    with pytest.raises(ContainerEnvError, match="make venvs"):
        base_python()
