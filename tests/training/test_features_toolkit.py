"""The features stage as the local emulator runs it: features.py, then a tuning trial (hpo.py) from its
features channel, each through the toolkit's own entry (``python -m sagemaker_training.cli.train``)
with /opt/ml laid out from the source dir exactly as the Lambda packs it, in the overlay that holds
its requirements (localcloud/sagemaker/runners/training.py does the same), with the jobs' Environment
contract.NO_SMDEBUG_ENVIRONMENT.

The trial gets ``--weights <a file deleted after the features job>`` and still succeeds: a trial from a
features channel never loads the backbone. The same weights make an image trial fail, so the file
really is gone.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path

import pytest
import torch
import torchvision
from trainhelpers import (
    FAST_HPS,
    TRAINING_DIR,
    run_script,
    run_toolkit_entry,
    toolkit_environment,
    write_tar_shards,
)

from dogclf import contract, metrics
from localcloud.environment.containerenv import base_python
from localcloud.sagemaker.runners.job_files import tar_directory
from pipeline.source_dir import pack  # the Lambda's own packer

pytestmark = pytest.mark.slow

FRAMEWORK = "2.6.0"
DATASET_ID = "uploads/sample.zip#etag-1"


def _opt_ml(base: Path, hyperparameters: dict[str, object], channels: dict[str, Path], program: str) -> Path:
    code = base / "code"
    code.mkdir(parents=True)
    archive, _ = pack(TRAINING_DIR)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        tar.extractall(code, filter="data")
    for sub in ("model", "output/data"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    toolkit_environment(base, hyperparameters, channels, entry_point=program)
    return base


def test_features_job_then_a_trial_from_its_channel_through_the_toolkit(tmp_path, sample_dataset):
    weights = tmp_path / "weights" / "resnet18.pth"
    weights.parent.mkdir()
    torch.manual_seed(7)
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    shards = write_tar_shards(sample_dataset, tmp_path / "shards", members_per_shard=64)
    features_hps = {
        "weights": str(weights),
        "image_size": 64,
        "batch_size": 64,
        "num_workers": 0,
        "dataset_id": DATASET_ID,
        "framework_version": FRAMEWORK,
        "features_key": contract.features_key(DATASET_ID, str(weights), 64, FRAMEWORK),
    }
    features_base = _opt_ml(tmp_path / "features-job", features_hps, shards, contract.FEATURES_PROGRAM)
    # The plain source dir: no requirements.txt, so the toolkit installs nothing and the image's own
    # interpreter runs both jobs.
    assert not (features_base / "code" / "requirements.txt").exists()
    python = base_python()
    started = time.perf_counter()
    features = run_toolkit_entry(python, features_base, environment=contract.NO_SMDEBUG_ENVIRONMENT)
    features_wall = time.perf_counter() - started
    assert features.returncode == 0, (features.stdout + features.stderr)[-5000:]
    meta = json.loads((features_base / "model" / contract.FEATURES_META_FILE).read_text())
    assert meta["counts"] == {"train": 160, "valid": 40, "test": 40}

    channel = tmp_path / "features-channel"
    channel.mkdir()
    tar_directory(features_base / "model", channel / contract.MODEL_ARCHIVE)  # as the emulator uploads it
    weights.unlink()  # a trial from features must not need the backbone's weights
    trial_hps = {**FAST_HPS, "weights": str(weights), "epochs": 3, "dataset_manifest": "s3://a/m.json"}
    trial_base = _opt_ml(tmp_path / "trial", trial_hps, {"features": channel}, "hpo.py")
    started = time.perf_counter()
    trial = run_toolkit_entry(python, trial_base, environment=contract.NO_SMDEBUG_ENVIRONMENT)
    trial_wall = time.perf_counter() - started
    log = trial.stdout + trial.stderr
    assert trial.returncode == 0, log[-5000:]
    found = metrics.parse_log(log)
    assert len(found["valid:accuracy"]) == 3 and len(found["test:accuracy"]) == 1
    assert found["test:accuracy"][-1] >= 0.6  # chance is 0.25
    assert (trial_base / "model" / "head.pth").is_file()
    print(f"\nthrough the toolkit: features job {features_wall:.1f}s, trial from features {trial_wall:.1f}s")

    from_images = run_script("hpo.py", tmp_path / "image-trial", trial_hps, shards)
    assert from_images.returncode == 2
    assert (
        "WeightsUnavailableError" in from_images.stderr
        and "expected imagenet, none or an existing file" in (from_images.stderr)
    )
