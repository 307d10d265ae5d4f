"""The profiled job's wheels must install on the training image: CPython 3.12, x86_64, glibc 2.35."""

from __future__ import annotations

import pytest
from fn_support import TRAINING_DIR

from tools.training_wheels import image_compatible


@pytest.mark.parametrize(
    "wheel",
    [
        "smdebug-1.0.34-py2.py3-none-any.whl",
        "numpy-2.2.6-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "pyinstrument_cext-0.2.4-cp312-cp312-manylinux1_x86_64.manylinux_2_35_x86_64.manylinux_2_5_x86_64.whl",
        "x-1.0-cp312-abi3-manylinux_2_35_x86_64.whl",
    ],
)
def test_wheels_the_image_can_install(wheel: str) -> None:
    assert image_compatible(wheel)


@pytest.mark.parametrize(
    "wheel",
    [
        "pyinstrument_cext-0.2.4-cp312-cp312-linux_x86_64.whl",  # compiled here, never checked
        "x-1.0-cp312-cp312-manylinux_2_36_x86_64.whl",  # needs a newer glibc than Ubuntu 22.04's
        "x-1.0-cp313-cp313-manylinux_2_17_x86_64.whl",  # another Python
        "x-1.0-cp312-cp312-manylinux_2_17_aarch64.whl",  # another architecture
        "x-1.0-cp312-cp312-musllinux_1_2_x86_64.whl",
        "x-1.0-cp312-cp312-win_amd64.whl",
    ],
)
def test_wheels_the_image_cannot_install(wheel: str) -> None:
    assert not image_compatible(wheel)


def test_every_built_wheel_suits_the_image() -> None:
    wheels = sorted(path.name for path in (TRAINING_DIR / "wheels").glob("*.whl"))
    assert wheels, "no training/wheels: run `make training-wheels`"
    assert [wheel for wheel in wheels if not image_compatible(wheel)] == []
