"""train_model.py as the pipeline runs it: the toolkit's argv and SM_* environment, the DebugHookConfig
the Lambda builds (debug_hook_config) written where the emulator writes it (SMDEBUG_CONFIG_FILE_PATH),
the full model forward, the rules on the saved trial and the profiler report."""

from __future__ import annotations

import json
import re

import pytest
from trainhelpers import hook_config_file, run_script

from dogclf import contract, metrics
from tools.sample_data import write_sample_tree

pytestmark = pytest.mark.slow

# The demo's dataset (localcloud/demo/main.py DemoSettings) and the worst case of its search space.
DEMO = {"classes": 4, "train": 32, "valid": 6, "test": 6}
HEALTHY_HPS: dict[str, object] = {
    "weights": "none",
    "image_size": 64,
    "epochs": 5,
    "batch_size": 32,
    "learning_rate": 0.001,
    "num_workers": 0,
    "augment": False,
}
MAX_TENSOR_BYTES = 20 * 2**20  # the whole trial of a demo-sized job


def _verdicts(result) -> dict[str, dict]:
    payload = json.loads((result.output_data_dir / contract.RULE_VERDICTS_FILE).read_text())
    return {rule["RuleConfigurationName"]: rule for rule in payload["rules"]}


@pytest.fixture(scope="module")
def demo_dataset(tmp_path_factory):
    return write_sample_tree(
        tmp_path_factory.mktemp("demo") / "dogImages",
        num_classes=DEMO["classes"],
        train_per_class=DEMO["train"],
        valid_per_class=DEMO["valid"],
        test_per_class=DEMO["test"],
        image_size=64,
        seed=3,
    )


@pytest.fixture(scope="module")
def healthy_job(tmp_path_factory, demo_dataset):
    base = tmp_path_factory.mktemp("train-job")
    config = hook_config_file(base, HEALTHY_HPS, DEMO)
    result = run_script(
        "train_model.py",
        base / "job",
        HEALTHY_HPS,
        {"training": demo_dataset.parent},
        extra_env={"SMDEBUG_CONFIG_FILE_PATH": str(config)},
    )
    assert result.returncode == 0, result.log
    result.config = config
    return result


def test_healthy_run_writes_everything(healthy_job):
    out = healthy_job.output_data_dir
    assert set(contract.REPORT_FILES) <= {p.name for p in out.iterdir()}
    assert (out / contract.LOSS_PLOT_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (healthy_job.model_dir / "model.pth").is_file()
    assert (healthy_job.model_dir / "code" / "inference.py").is_file()
    assert not (healthy_job.model_dir / "code" / "dogclf" / "sample_data.py").exists()
    found = metrics.parse_log(healthy_job.stdout)
    assert len(found["valid:accuracy"]) == 5 and found["test:accuracy"][-1] > 0.5


def test_the_full_model_runs_forward_under_the_lambdas_hook_config(healthy_job):
    """No feature cache; the hook from the config file; ReLU inputs of the backbone in the trial."""
    from smdebug.trials import create_trial

    recorded = json.loads((healthy_job.output_data_dir / contract.METRICS_FILE).read_text())
    assert recorded["feature_cache"] is False and "feature_extraction_seconds" not in recorded["timings"]
    assert f"Debugger hook from {healthy_job.config}" in healthy_job.stdout
    tensors = healthy_job.config.parent / "sm-tensors"
    trial = create_trial(str(tensors))
    relu = trial.tensor_names(regex=".*relu_input")
    assert "backbone.layer1.0.relu_input_0" in relu and len(relu) == 17
    size = sum(p.stat().st_size for p in tensors.rglob("*") if p.is_file())
    print(f"tensor output: {size / 2**20:.2f} MiB for {len(trial.steps())} steps")
    assert 0 < size < MAX_TENSOR_BYTES


def test_healthy_run_all_rules_quiet_on_enough_steps(healthy_job):
    verdicts = _verdicts(healthy_job)
    assert list(verdicts) == [*contract.RULE_NAMES, contract.PROFILER_REPORT_RULE]
    for name in contract.RULE_NAMES:
        verdict = verdicts[name]
        assert verdict["RuleEvaluationStatus"] == contract.NO_ISSUES_FOUND, verdict
        assert verdict["Step"] is None
        # Quiet because the rule looked at enough data and found nothing.
        assert verdict[contract.STEPS_EVALUATED_KEY] >= contract.MIN_RULE_STEPS, verdict
        steps = verdict[contract.STEPS_EVALUATED_KEY]
        assert re.search(rf"rule {name}: NoIssuesFound - .* \({steps} steps\)", healthy_job.stdout)


def test_profiler_report_covers_the_profiler_rules(healthy_job):
    out = healthy_job.output_data_dir
    report = (out / contract.PROFILER_REPORT_FILE).read_text()
    assert report.count("data:image/png;base64,") == 3
    assert "http://" not in report and "https://" not in report and "<script" not in report
    assert "aten::" in report  # real torch.profiler operators
    for name in contract.PROFILER_RULE_NAMES:
        assert f"<td>{name}</td>" in report, name
    for name in ("BatchSize", "GPUMemoryIncrease", "LowGPUUtilization", "CPUBottleneck"):
        assert re.search(rf"<td>{name}</td><td>OK</td><td>no GPU: not applicable", report), name
    samples = re.search(r"system samples: (\d+)", report)
    assert samples and int(samples.group(1)) >= 20  # a curve, not two points
    findings_table = report.split("Findings and recommendations")[1].split("Top operators")[0]
    assert not re.search(r"\d\.\d{4,}", findings_table)  # rounded numbers, not raw floats
    recorded = json.loads((out / contract.METRICS_FILE).read_text())
    assert [f["rule"] for f in recorded["profiler_findings"]] == list(contract.PROFILER_RULE_NAMES)
    entry = _verdicts(healthy_job)[contract.PROFILER_REPORT_RULE]
    triggered = [f["rule"] for f in recorded["profiler_findings"] if f["triggered"]]
    assert entry[contract.PROFILER_FINDINGS_KEY] == triggered
    assert entry["RuleEvaluationStatus"] == (contract.ISSUES_FOUND if triggered else contract.NO_ISSUES_FOUND)
    assert recorded["rule_verdicts"][-1] == entry


def test_loss_history_has_every_training_step_and_each_epoch(healthy_job):
    history = json.loads((healthy_job.output_data_dir / contract.METRICS_FILE).read_text())["history"]
    assert len(history["train_step_loss"]) == 5 * 4  # 128 images / 32 per batch, 5 epochs
    assert [round(x, 3) for x, _ in history["train_step_loss"][:4]] == [0.25, 0.5, 0.75, 1.0]
    assert len(history["valid_step_loss"]) == 5 and len(history["epochs"]) == 5


def test_nothing_learns_loss_not_decreasing_fires_with_the_in_script_hook(tmp_path, demo_dataset):
    """learning_rate 0 and one batch holding the whole train split: the loss is exactly flat. No
    DebugHookConfig: the in-script hook uses the same config, sized from the dataset."""
    hps = {**HEALTHY_HPS, "image_size": 32, "epochs": 20, "learning_rate": 0, "batch_size": 128}
    result = run_script("train_model.py", tmp_path, hps, {"training": demo_dataset})
    assert result.returncode == 0, result.log
    assert "Debugger hook from in-script default" in result.stdout
    written = json.loads((result.output_data_dir / "debughookconfig.json").read_text())
    assert written["LocalPath"] == str(result.output_data_dir / "tensors")
    verdicts = _verdicts(result)
    for name in (contract.LOSS_NOT_DECREASING, contract.OVERTRAINING):
        assert verdicts[name]["RuleEvaluationStatus"] == contract.ISSUES_FOUND, verdicts[name]
        assert f"rule {name}: IssuesFound at step" in result.stdout
    assert "epoch 2 " in verdicts[contract.LOSS_NOT_DECREASING]["StatusDetails"]
    assert "did not decrease by 1%" in verdicts[contract.LOSS_NOT_DECREASING]["StatusDetails"]
    # One step per epoch: the first comparison (epoch 2 against epoch 1) fires, having read 2 steps.
    assert verdicts[contract.LOSS_NOT_DECREASING][contract.STEPS_EVALUATED_KEY] == 2
