"""The profiled job (train_model.py) given the features job's archive: the head trains from the saved
features and the full model runs only at the hook's relu_input steps (dogclf/profiled_features.py).

Both jobs run as the pipeline runs them (toolkit argv, SM_* environment, the Lambda's DebugHookConfig
written where the emulator writes it, tar-shard channels), against the same job without the features
channel, which runs the full model at every step (today's path)."""

from __future__ import annotations

import json

import pytest
import torch
from trainhelpers import JobResult, hook_config_file, run_script, write_tar_shards

from dogclf import contract
from dogclf.contract import MIN_RULE_STEPS
from dogclf.debugger.hook_config import debug_hook_config
from dogclf.profiled_features import relu_input_steps, rows_to_samples
from localcloud.sagemaker.runners.job_files import tar_directory
from tools.sample_data import write_sample_tree

DEMO = {"classes": 4, "train": 32, "valid": 6, "test": 6}
TRAIN_IMAGES = DEMO["classes"] * DEMO["train"]
# 128 train images / 16 = 8 steps per epoch x 5 epochs = 40 steps: 20 from images, 20 from features.
HPS: dict[str, object] = {
    "weights": "none",
    "image_size": 64,
    "epochs": 5,
    "batch_size": 16,
    "learning_rate": 0.001,
    "num_workers": 0,
    "augment": False,
    "seed": 0,
}


def _recorded(job: JobResult) -> dict:
    return json.loads((job.output_data_dir / contract.METRICS_FILE).read_text())


def _verdicts(job: JobResult) -> dict[str, dict]:
    payload = json.loads((job.output_data_dir / contract.RULE_VERDICTS_FILE).read_text())
    return {rule["RuleConfigurationName"]: rule for rule in payload["rules"]}


def _profiled(base, hps, channels) -> JobResult:
    base.mkdir(parents=True)
    config = hook_config_file(base, hps, DEMO)
    result = run_script(
        "train_model.py", base / "job", hps, channels, extra_env={"SMDEBUG_CONFIG_FILE_PATH": str(config)}
    )
    assert result.returncode == 0, result.log
    result.tensors = base / "sm-tensors"
    return result


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    tree = write_sample_tree(
        tmp_path_factory.mktemp("demo") / "dogImages",
        num_classes=DEMO["classes"],
        train_per_class=DEMO["train"],
        valid_per_class=DEMO["valid"],
        test_per_class=DEMO["test"],
        image_size=64,
        seed=3,
    )
    return write_tar_shards(tree, tmp_path_factory.mktemp("shards") / "data", members_per_shard=40)


@pytest.fixture(scope="module")
def features_channel(tmp_path_factory, shards):
    """The features job on the same shards, its model dir tarred as SageMaker uploads it."""
    hps = {"weights": "none", "image_size": 64, "batch_size": 50, "num_workers": 0, "seed": 0}
    job = run_script("features.py", tmp_path_factory.mktemp("features-job"), hps, shards)
    assert job.returncode == 0, job.log
    folder = tmp_path_factory.mktemp("channel") / "features"
    folder.mkdir()
    tar_directory(job.model_dir, folder / contract.MODEL_ARCHIVE)
    return folder


@pytest.fixture(scope="module")
def full_forward(tmp_path_factory, shards):
    return _profiled(tmp_path_factory.mktemp("full") / "run", HPS, shards)


@pytest.fixture(scope="module")
def from_features(tmp_path_factory, shards, features_channel):
    return _profiled(tmp_path_factory.mktemp("hybrid") / "run", HPS, {**shards, "features": features_channel})


def test_relu_input_steps_of_the_lambdas_config(tmp_path):
    config = hook_config_file(tmp_path, HPS, DEMO)
    assert relu_input_steps(config) == MIN_RULE_STEPS


def test_relu_input_saved_beyond_the_first_steps_means_every_step(tmp_path):
    config = debug_hook_config(train_examples=128, valid_examples=24, batch_size=16, epochs=5)
    relu = next(c for c in config["CollectionConfigurations"] if c["CollectionName"] == "relu_input")
    del relu["CollectionParameters"]["train.end_step"]  # then relu_input is saved at every step
    path = tmp_path / "hook.json"
    path.write_text(json.dumps(config))
    assert relu_input_steps(path) is None
    relu["CollectionParameters"]["train.end_step"] = "5"
    relu["CollectionParameters"]["eval.end_step"] = "3"  # activations of validation steps too
    path.write_text(json.dumps(config))
    assert relu_input_steps(path) is None
    assert relu_input_steps(tmp_path / "missing.json") is None


def test_rows_match_images_across_channel_mounts():
    """features.json names a skipped image by the features job's path; the profiled job mounts the
    same shard elsewhere."""
    from dogclf.data import TarMember

    samples = [
        (TarMember(f"/opt/ml/input/data/train/train-0000{i // 2}.tar", f"001.A/{i}.jpg", 0, 1), 0)
        for i in range(4)
    ]
    skipped = ["/job-a/input/data/train/train-00001.tar:001.A/2.jpg"]
    assert rows_to_samples(samples, skipped, rows=3) == [0, 1, 3]
    assert rows_to_samples(samples, [], rows=3) is None  # a row count that no matching explains


@pytest.mark.slow
def test_metrics_equal_the_full_forward_path(full_forward, from_features):
    """Same seed, same batches, same head init: every loss and the final metrics within 1e-4."""
    full, hybrid = _recorded(full_forward), _recorded(from_features)
    assert hybrid["features_channel"]["source"].endswith("features")
    for key, value in full["final"].items():
        assert hybrid["final"][key] == pytest.approx(value, abs=1e-4), key
    for key in ("train_step_loss", "valid_step_loss", "test_step_loss"):
        expected, got = torch.tensor(full["history"][key]), torch.tensor(hybrid["history"][key])
        assert got.shape == expected.shape and torch.allclose(got, expected, atol=1e-4), key


@pytest.mark.slow
def test_the_backbone_runs_only_at_the_hooks_relu_input_steps(full_forward, from_features):
    backbone = _recorded(from_features)["backbone_images"]
    assert backbone["image_steps"] == MIN_RULE_STEPS
    assert backbone["forward_images"] == MIN_RULE_STEPS * int(HPS["batch_size"])  # type: ignore[call-overload]
    assert backbone["dataset_images"] == DEMO["classes"] * sum(DEMO[s] for s in ("train", "valid", "test"))
    assert "backbone_images" not in _recorded(full_forward)


@pytest.mark.slow
def test_the_hook_sees_what_the_full_forward_path_shows_it(full_forward, from_features):
    """The same tensor names, the same saved steps per collection, relu_input at the first steps."""
    from smdebug import modes
    from smdebug.trials import create_trial

    full, hybrid = create_trial(str(full_forward.tensors)), create_trial(str(from_features.tensors))
    assert sorted(hybrid.tensor_names()) == sorted(full.tensor_names())
    relu = hybrid.tensor_names(regex=".*relu_input")
    assert "backbone.layer1.0.relu_input_0" in relu and len(relu) == 17
    for name in relu:
        assert hybrid.tensor(name).steps(mode=modes.TRAIN) == list(range(MIN_RULE_STEPS)), name
    for mode in (modes.TRAIN, modes.EVAL, modes.PREDICT):
        assert hybrid.steps(mode=mode) == full.steps(mode=mode)
    loss = hybrid.tensor_names(collection="losses")[0]
    for step in hybrid.tensor(loss).steps(mode=modes.TRAIN):
        expected = full.tensor(loss).value(step, mode=modes.TRAIN)
        assert hybrid.tensor(loss).value(step, mode=modes.TRAIN) == pytest.approx(expected, abs=1e-4)


@pytest.mark.slow
def test_every_rule_decides_as_on_the_full_forward_path_and_the_profiler_has_data(
    full_forward, from_features
):
    """Whatever the rules conclude on this run (their semantics are dogclf/debugger/rules.py's), they
    conclude it from the same data: same status, same step, same number of steps evaluated."""
    verdicts, expected = _verdicts(from_features), _verdicts(full_forward)
    for name in contract.RULE_NAMES:
        got, want = verdicts[name], expected[name]
        assert got[contract.STEPS_EVALUATED_KEY] >= MIN_RULE_STEPS, got
        for key in ("RuleEvaluationStatus", "Step", contract.STEPS_EVALUATED_KEY):
            assert got[key] == want[key], (name, key, got, want)
    report = (from_features.output_data_dir / contract.PROFILER_REPORT_FILE).read_text()
    assert "aten::mkldnn_convolution" in report or "aten::cudnn_convolution" in report  # backbone steps


@pytest.mark.slow
def test_nothing_learns_fires_loss_not_decreasing_from_the_features(tmp_path, shards, features_channel):
    """learning_rate 0, one batch holding the whole train split, 40 epochs: 20 steps from images, 20
    from features, a flat loss throughout (the two backbone passes differ by float rounding only)."""
    hps = {**HPS, "epochs": 40, "learning_rate": 0, "batch_size": TRAIN_IMAGES}
    result = _profiled(tmp_path / "run", hps, {**shards, "features": features_channel})
    assert _recorded(result)["backbone_images"]["image_steps"] == MIN_RULE_STEPS
    verdicts = _verdicts(result)
    for name in (contract.LOSS_NOT_DECREASING, contract.OVERTRAINING):
        assert verdicts[name]["RuleEvaluationStatus"] == contract.ISSUES_FOUND, verdicts[name]
