"""A profiled job finishes under any ProfilerConfig a user can send (dogclf/profiling/framework_guard.py).

The seed notebook's settings, ``ProfilerConfig(system_monitor_interval_millis=500,
framework_profile_params=FrameworkProfile(num_steps=10))``, made smdebug's cProfile-based Python profiler
segfault train_model.py (exit -11) at its first profiled step. The guard drops framework profiling with
one log line; system monitoring, the hook and the in-script rules go on.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from trainhelpers import FAST_HPS, TRAINING_DIR, run_toolkit_entry, toolkit_environment

from dogclf import contract
from dogclf.profiling import framework_guard
from localcloud.environment.containerenv import offline_environment, overlay_python
from localcloud.sagemaker.runners.job_files import write_config_files
from pipeline.source_dir import PROFILED, pack  # the Lambda's own packer
from tests.support.seed_settings import SEED_PROFILER_CONFIG


def _write_config(tmp_path: Path, parameters: dict[str, object]) -> Path:
    path = tmp_path / "profilerconfig.json"
    path.write_text(json.dumps({"ProfilingParameters": parameters}))
    return path


def test_the_seeds_framework_profiling_is_dropped_and_the_rest_kept(tmp_path):
    path = _write_config(tmp_path, dict(SEED_PROFILER_CONFIG["ProfilingParameters"]))
    original = path.read_text()
    env = {framework_guard.CONFIG_PATH_ENV: str(path)}

    line = framework_guard.switch_off_framework_profiling(env)

    assert line is not None and line.startswith("framework profiling off (")
    for key in ("DetailedProfilingConfig", "PythonProfilingConfig", "DataloaderProfilingConfig"):
        assert key in line
    assert "segfault" in line and "torch 2" in line
    copy = Path(env[framework_guard.CONFIG_PATH_ENV])
    assert copy != path
    assert path.read_text() == original  # the platform's file is left as written
    kept = json.loads(copy.read_text())["ProfilingParameters"]
    assert kept == {
        "LocalPath": "/opt/ml/output/profiler",
        "RotateMaxFileSizeInBytes": "10485760",
        "RotateFileCloseIntervalInSeconds": "60",
        "FileOpenFailThreshold": "50",
    }


def test_keys_are_matched_as_smdebug_matches_them_case_blind(tmp_path):
    path = _write_config(tmp_path, {"pythonprofilingconfig": "{}", "ProfilingIntervalInMilliseconds": 100})
    env = {framework_guard.CONFIG_PATH_ENV: str(path)}
    assert framework_guard.switch_off_framework_profiling(env) is not None
    kept = json.loads(Path(env[framework_guard.CONFIG_PATH_ENV]).read_text())["ProfilingParameters"]
    assert kept == {"ProfilingIntervalInMilliseconds": 100}


@pytest.mark.parametrize(
    "content",
    [
        None,  # no profiler config at all (no ProfilerConfig in the request)
        "not json",
        json.dumps({"ProfilingParameters": {"ProfilingIntervalInMilliseconds": 500}}),  # system only
        json.dumps(["a list"]),
    ],
)
def test_nothing_changes_without_framework_profiling(tmp_path, content):
    path = tmp_path / "profilerconfig.json"
    if content is not None:
        path.write_text(content)
    env = {framework_guard.CONFIG_PATH_ENV: str(path)}
    assert framework_guard.switch_off_framework_profiling(env) is None
    assert env == {framework_guard.CONFIG_PATH_ENV: str(path)}


@pytest.mark.slow
def test_the_seeds_profiler_settings_complete_a_profiled_job_through_the_toolkit(tmp_path, sample_dataset):
    """train_model.py through ``python -m sagemaker_training.cli.train``, /opt/ml laid out from the source
    dir as the Lambda packs it, profilerconfig.json written by the emulator's own writer from the SDK's
    request. Before the guard this run ended with exit code -11."""
    base = tmp_path / "job"
    code = base / "code"
    code.mkdir(parents=True)
    archive, _ = pack(TRAINING_DIR, PROFILED)  # the profiled job's source dir: requirements + wheels
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        tar.extractall(code, filter="data")
    for sub in ("model", "output/data"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    hps = {**FAST_HPS, "epochs": 1, "batch_size": 16}
    toolkit_environment(base, hps, {"training": sample_dataset.parent}, entry_point="train_model.py")
    hyperparameters = json.loads((base / "input" / "config" / "hyperparameters.json").read_text())
    write_config_files(
        {
            "HyperParameters": hyperparameters,
            "AlgorithmSpecification": {"TrainingInputMode": "File"},
            "InputDataConfig": [{"ChannelName": "training"}],
            "ProfilerConfig": SEED_PROFILER_CONFIG,
        },
        base,
    )
    python = overlay_python(code / "requirements.txt", env=offline_environment())  # no index, as a job

    completed = run_toolkit_entry(python, base)

    log = completed.stdout + completed.stderr
    assert completed.returncode == 0, log[-5000:]
    assert log.count("framework profiling off (") == 1
    assert "Segmentation fault" not in log
    verdicts = json.loads((base / "output" / "data" / contract.RULE_VERDICTS_FILE).read_text())["rules"]
    names = [rule["RuleConfigurationName"] for rule in verdicts]
    assert "LossNotDecreasing" in names and names[-1] == "ProfilerReport"
    assert "system samples)" in log  # the in-script system monitor ran
    assert (base / "output" / "data" / contract.PROFILER_REPORT_FILE).is_file()
