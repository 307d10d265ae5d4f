"""The Debugger rules on real photos: each rule fires on the purpose-broken run built for it and stays
quiet on a healthy run, all on Fashion-MNIST (Debian's dataset-fashion-mnist, repacked by
tools/real_data.py) through train_model.py with its in-script hook and rules.

Six small runs (a few hundred 32 px images, one thread each); the calibration bench
(bench/bench_rule_calibration.py) runs the larger grid over two datasets and three seeds.
VanishingGradient has no real-data broken run: the head's gradient is (softmax - onehot) x
batch-normalised features, which does not vanish before the loss converges (a converged step is not
judged); its firing is tested on constructed gradients in test_rules.py.
Without the Debian package these tests fail (never skip): `make real-data-deps` installs it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from trainhelpers import PYTHON, REPO, TRAINING_DIR

from dogclf import contract
from tools import real_data

pytestmark = pytest.mark.slow  # six training runs of train_model.py

IMAGE_SIZE = 32
BASE = {"weights": "none", "image_size": IMAGE_SIZE, "batch_size": 16, "num_workers": 0, "seed": 0}
BAD_INIT_ENTRY = REPO / "bench" / "calibration_entry.py"


def _dataset(root: Path, sizes: tuple[int, int, int], *, shuffle_labels: bool = False) -> Path:
    if not (real_data.FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(
            f"Fashion-MNIST is not installed ({real_data.FASHION_MNIST_DIR}): these tests need Debian's "
            f"{real_data.FASHION_MNIST_PACKAGE} package; run `make real-data-deps` (apt-get, as root)"
        )
    if not root.is_dir():
        counts = dict(zip(("train", "valid", "test"), sizes, strict=True))
        files = real_data.iter_files(
            "fashion-mnist", counts=counts, seed=0, image_size=IMAGE_SIZE, shuffle_labels=shuffle_labels
        )
        real_data.write(root, files, top_folder="", as_folder=True)
    return root


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("fashion-mnist")
    return {
        "healthy": _dataset(base / "healthy", (300, 100, 100)),
        "shuffled": _dataset(base / "shuffled", (200, 100, 100), shuffle_labels=True),
        "tiny": _dataset(base / "tiny", (100, 100, 100)),
    }


def _run(
    out: Path, data: Path, *, script: Path = TRAINING_DIR / "train_model.py", **hps: Any
) -> dict[str, Any]:
    """train_model.py on ``data``; returns its rule verdicts by rule name."""
    args = [f"--{key}={value}" for key, value in {**BASE, **hps}.items()]
    command = [PYTHON, str(script), f"--data_dir={data}", f"--model_dir={out / 'model'}"]
    command += [f"--output_data_dir={out / 'output'}", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "SMDEBUG", "SAGEMAKER_"))}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    document = json.loads((out / "output" / contract.RULE_VERDICTS_FILE).read_text())
    return {entry["RuleConfigurationName"]: entry for entry in document["rules"]}


def _status(verdicts: dict[str, Any], rule: str) -> str:
    return verdicts[rule]["RuleEvaluationStatus"]


def test_a_healthy_real_run_passes_every_rule(tmp_path, datasets):
    verdicts = _run(tmp_path, datasets["healthy"], learning_rate=0.003, epochs=3)
    for rule in contract.RULE_NAMES:
        assert _status(verdicts, rule) == contract.NO_ISSUES_FOUND, verdicts[rule]
        assert verdicts[rule][contract.FIGURE_KEY] and verdicts[rule][contract.STEP_RANGE_KEY], verdicts[rule]


def test_a_diverging_learning_rate_trips_loss_not_decreasing(tmp_path, datasets):
    verdicts = _run(tmp_path, datasets["healthy"], learning_rate=50.0, epochs=3)
    assert _status(verdicts, contract.LOSS_NOT_DECREASING) == contract.ISSUES_FOUND
    assert "rose to" in verdicts[contract.LOSS_NOT_DECREASING]["StatusDetails"]


def test_a_learning_rate_too_small_to_move_trips_loss_not_decreasing(tmp_path, datasets):
    verdicts = _run(tmp_path, datasets["healthy"], learning_rate=1e-7, epochs=3)
    assert _status(verdicts, contract.LOSS_NOT_DECREASING) == contract.ISSUES_FOUND
    assert "did not decrease" in verdicts[contract.LOSS_NOT_DECREASING]["StatusDetails"]


def test_a_badly_initialised_head_trips_poor_weight_initialization(tmp_path, datasets):
    verdicts = _run(
        tmp_path,
        datasets["healthy"],
        script=BAD_INIT_ENTRY,
        learning_rate=0.003,
        epochs=3,
        head_init_scale=1000,
    )
    assert _status(verdicts, contract.POOR_WEIGHT_INITIALIZATION) == contract.ISSUES_FOUND
    # The logits' variance is orders of magnitude from their input's: the activation check decides.
    assert "activation-input variance" in verdicts[contract.POOR_WEIGHT_INITIALIZATION]["StatusDetails"]


def test_shuffled_labels_trip_overfit(tmp_path, datasets):
    verdicts = _run(tmp_path, datasets["shuffled"], learning_rate=0.01, epochs=12)
    assert _status(verdicts, contract.OVERFIT) == contract.ISSUES_FOUND, verdicts[contract.OVERFIT]


def test_too_many_epochs_on_too_little_data_trip_overtraining(tmp_path, datasets):
    verdicts = _run(tmp_path, datasets["tiny"], learning_rate=0.003, epochs=25)
    assert _status(verdicts, contract.OVERTRAINING) == contract.ISSUES_FOUND, verdicts[contract.OVERTRAINING]
    assert "validation loss has not improved" in verdicts[contract.OVERTRAINING]["StatusDetails"]
