"""train_model.py needs the requirements.txt it ships with: in the bare image it dies importing smdebug
(what happened on AWS while the source dir left requirements.txt out); with the source dir as the
Lambda packs it, the toolkit installs them (locally: the cached overlay) and the job runs.

Both runs go through the real toolkit entry (``python -m sagemaker_training.cli.train``) with a
SAGEMAKER_BASE_DIR laid out like /opt/ml, under .venv-container's interpreter (the image's).
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest
from trainhelpers import FAST_HPS, TRAINING_DIR, run_toolkit_entry, toolkit_environment

from localcloud.environment.containerenv import base_python, offline_environment, overlay_python
from pipeline.source_dir import PROFILED, pack  # the Lambda's own packer

pytestmark = pytest.mark.slow

TOOLKIT_TIMEOUT_S = 600


def _opt_ml(root: Path, sample_dataset: Path, *, with_requirements: bool) -> Path:
    """/opt/ml with code/ = the source dir exactly as the Lambda uploads it (minus requirements.txt)."""
    base = root / "opt-ml"
    code = base / "code"
    code.mkdir(parents=True)
    archive, _ = pack(TRAINING_DIR, PROFILED)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        tar.extractall(code, filter="data")
    assert (code / "requirements.txt").is_file()  # the Lambda ships it
    if not with_requirements:
        (code / "requirements.txt").unlink()
    for sub in ("model", "output/data"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    toolkit_environment(
        base, {**FAST_HPS, "epochs": 1}, {"training": sample_dataset.parent}, entry_point="train_model.py"
    )
    return base


def _run_toolkit(python: Path, base: Path) -> subprocess.CompletedProcess[str]:
    return run_toolkit_entry(python, base, TOOLKIT_TIMEOUT_S)


def _base_has_smdebug() -> bool:
    probe = "import importlib.util as u; print(u.find_spec('smdebug') is not None)"
    out = subprocess.run([str(base_python()), "-I", "-c", probe], capture_output=True, text=True, timeout=60)
    return out.stdout.strip() == "True"


def test_train_model_fails_in_the_bare_image_without_its_requirements(tmp_path, sample_dataset):
    base = _opt_ml(tmp_path, sample_dataset, with_requirements=False)
    result = _run_toolkit(base_python(), base)
    log = result.stdout + result.stderr
    assert result.returncode != 0, log[-3000:]
    assert "No module named 'smdebug'" in log
    assert "Installing dependencies from requirements.txt" not in log  # nothing to install
    assert not (base / "model" / "model.pth").exists()
    assert (base / "output" / "failure").is_file()  # the toolkit reported the failure, as on AWS


def test_train_model_runs_under_the_toolkit_once_its_requirements_are_installed(tmp_path, sample_dataset):
    assert not _base_has_smdebug()
    base = _opt_ml(tmp_path, sample_dataset, with_requirements=True)
    # Built offline from the shipped wheels, as the emulator builds it for a job (cached after once).
    python = overlay_python(base / "code" / "requirements.txt", env=offline_environment())
    result = _run_toolkit(python, base)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]
    # The toolkit ran its own `pip install -r requirements.txt`, and everything was already there.
    assert "Installing dependencies from requirements.txt" in log
    assert "Requirement already satisfied: smdebug==1.0.34" in log
    assert (base / "model" / "model.pth").is_file()
    # model.tar.gz's code/ must not carry requirements: the inference toolkit would pip-install
    # smdebug (and its protobuf/numpy pins) at every endpoint start.
    code = base / "model" / "code"
    assert (code / "inference.py").is_file()
    assert not [p for p in code.rglob("requirements*.txt")]
    assert not _base_has_smdebug()  # the install went into the overlay, never into the base
