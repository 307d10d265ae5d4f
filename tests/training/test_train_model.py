"""train_model.py: Debugger hook, in-script rules, profiler report, as a SageMaker job."""

from __future__ import annotations

import json

import pytest
from trainhelpers import FAST_HPS, run_script

from dogclf import metrics

pytestmark = pytest.mark.slow

RULE_NAMES = ["VanishingGradient", "Overfit", "Overtraining", "PoorWeightInitialization", "LossNotDecreasing"]


def _verdicts(result) -> dict[str, dict]:
    payload = json.loads((result.output_data_dir / "rule_verdicts.json").read_text())
    return {rule["RuleConfigurationName"]: rule for rule in payload["rules"]}


@pytest.fixture(scope="module")
def healthy_job(tmp_path_factory, sample_dataset):
    result = run_script(
        "train_model.py",
        tmp_path_factory.mktemp("train-job"),
        {**FAST_HPS, "epochs": 3},
        {"training": sample_dataset.parent},
    )
    assert result.returncode == 0, result.log
    return result


def test_healthy_run_writes_everything(healthy_job):
    out = healthy_job.output_data_dir
    assert {"metrics.json", "rule_verdicts.json", "profiler-report.html", "loss.png"} <= {
        p.name for p in out.iterdir()
    }
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (healthy_job.model_dir / "model.pth").is_file()
    assert (healthy_job.model_dir / "code" / "inference.py").is_file()
    assert "Debugger hook from in-script default" in healthy_job.stdout
    assert list((out / "tensors").rglob("*.tfevents"))  # the hook really saved tensors
    found = metrics.parse_log(healthy_job.stdout)
    assert len(found["valid:accuracy"]) == 3 and found["test:accuracy"][-1] > 0.5


def test_healthy_run_all_rules_quiet(healthy_job):
    verdicts = _verdicts(healthy_job)
    assert list(verdicts) == RULE_NAMES
    for name, verdict in verdicts.items():
        assert verdict["RuleEvaluationStatus"] == "NoIssuesFound", (name, verdict)
        assert verdict["Step"] is None
        assert f"rule {name}: NoIssuesFound" in healthy_job.stdout
    # Quiet because the rules looked and found nothing, not because they had no data.
    for name in (
        "VanishingGradient",
        "Overfit",
        "Overtraining",
        "PoorWeightInitialization",
        "LossNotDecreasing",
    ):
        assert verdicts[name]["StatusDetails"].startswith("no issues found"), verdicts[name]


def test_profiler_report_is_self_contained(healthy_job):
    report = (healthy_job.output_data_dir / "profiler-report.html").read_text()
    assert report.count("data:image/png;base64,") == 3
    assert "http://" not in report and "https://" not in report and "<script" not in report
    for section in (
        "Findings and recommendations",
        "Top operators",
        "data loading",
        "StepOutlier",
        "Dataloader",
    ):
        assert section in report
    assert "aten::" in report  # real torch.profiler operators
    recorded = json.loads((healthy_job.output_data_dir / "metrics.json").read_text())
    assert {f["rule"] for f in recorded["profiler_findings"]} >= {
        "StepOutlier",
        "Dataloader",
        "CPUBottleneck",
    }
    assert recorded["rule_verdicts"][0]["RuleConfigurationName"] == "VanishingGradient"


def test_loss_not_decreasing_fires_when_nothing_learns(tmp_path, sample_dataset):
    # learning_rate 0 and one batch holding the whole train split: the loss is exactly flat.
    hps = {**FAST_HPS, "epochs": 12, "learning_rate": 0, "batch_size": 160}
    result = run_script("train_model.py", tmp_path, hps, {"training": sample_dataset})
    assert result.returncode == 0, result.log
    verdicts = _verdicts(result)
    assert verdicts["LossNotDecreasing"]["RuleEvaluationStatus"] == "IssuesFound"
    assert verdicts["LossNotDecreasing"]["Step"] is not None
    assert "did not decrease by 0.1%" in verdicts["LossNotDecreasing"]["StatusDetails"]
    assert verdicts["Overtraining"]["RuleEvaluationStatus"] == "IssuesFound"


def test_overfit_overtraining_and_vanishing_gradient_fire_on_a_memorizing_run(tmp_path, sample_dataset):
    hps = {**FAST_HPS, "epochs": 10, "learning_rate": 0.05}
    result = run_script("train_model.py", tmp_path, hps, {"training": sample_dataset})
    assert result.returncode == 0, result.log
    verdicts = _verdicts(result)
    for name in ("Overfit", "Overtraining", "VanishingGradient"):
        assert verdicts[name]["RuleEvaluationStatus"] == "IssuesFound", verdicts[name]
        assert f"rule {name}: IssuesFound at step" in result.stdout


def test_sagemaker_debug_hook_config_is_used(tmp_path, sample_dataset):
    """A DebugHookConfig file (what SageMaker writes) drives the hook: its LocalPath and collections."""
    tensors = tmp_path / "sm-tensors"
    config = tmp_path / "debughookconfig.json"
    config.write_text(
        json.dumps(
            {
                "LocalPath": str(tensors),
                "HookParameters": {"save_interval": "1"},
                "CollectionConfigurations": [
                    {"CollectionName": "losses", "CollectionParameters": {"save_interval": "1"}},
                    {"CollectionName": "gradients", "CollectionParameters": {"save_interval": "1"}},
                ],
            }
        )
    )
    result = run_script(
        "train_model.py",
        tmp_path / "job",
        {**FAST_HPS, "epochs": 1},
        {"training": sample_dataset},
        extra_env={"SMDEBUG_CONFIG_FILE_PATH": str(config)},
    )
    assert result.returncode == 0, result.log
    assert f"Debugger hook from {config}" in result.stdout
    assert list(tensors.rglob("*.tfevents"))
    assert not (result.output_data_dir / "tensors").exists()
    assert len(_verdicts(result)) == 5
