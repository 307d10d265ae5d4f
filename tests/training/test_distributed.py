"""Scale-out: DistributedDataParallel with gloo on two CPU processes."""

from __future__ import annotations

import json

import pytest
from trainhelpers import FAST_HPS, PYTHON, run_script, start_script

from dogclf import metrics
from localcloud.shared import free_port

pytestmark = pytest.mark.slow


def test_two_sagemaker_hosts_train_together_and_only_rank0_writes(tmp_path, sample_dataset):
    """Two hosts (SM_HOSTS), one process each, as a 2-instance SageMaker job: each host has its own
    /opt/ml, so the second host's model and output folders must stay empty."""
    hosts = ("algo-1", "algo-2")
    rendezvous = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}  # "algo-1" resolves in a job
    hps = {**FAST_HPS, "epochs": 2}
    jobs = [
        start_script(
            "hpo.py",
            tmp_path / host,
            hps,
            {"training": sample_dataset},
            hosts=hosts,
            current_host=host,
            extra_env=rendezvous,
        )
        for host in hosts
    ]
    results = []
    for process, result in jobs:
        try:
            result.stdout, result.stderr = process.communicate(timeout=300)
        finally:
            process.kill()
        result.returncode = process.returncode
        results.append(result)
    for result in results:
        assert result.returncode == 0, result.log
    first, second = results
    assert sorted(p.name for p in first.model_dir.iterdir()) == [
        "classes.json",
        "code",
        "model.pth",
        "model_meta.json",
    ]
    assert not second.model_dir.exists() or not any(second.model_dir.iterdir())
    assert not (second.output_data_dir / "metrics.json").exists()
    assert "rank 0/2 on cpu" in first.stdout
    assert metrics.parse_log(second.stdout) == {}  # only rank 0 prints metric lines
    recorded = json.loads((first.output_data_dir / "metrics.json").read_text())
    assert recorded["world_size"] == 2
    # Every image was seen once per epoch across the two ranks (DistributedSampler shards).
    assert [epoch["train"]["count"] for epoch in recorded["history"]["epochs"]] == [160, 160]
    assert recorded["history"]["epochs"][-1]["valid"]["count"] == 40
    assert len(metrics.parse_log(first.stdout)["valid:accuracy"]) == 2
    assert recorded["final"]["test:accuracy"] > 0.5


def test_torchrun_two_processes(tmp_path, sample_dataset):
    # `torchrun` is `python -m torch.distributed.run`; the module form also works from an overlay venv,
    # whose bin/ does not hold the base environment's console scripts.
    launcher = [
        PYTHON,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes",
        "1",
        "--nproc-per-node",
        "2",
    ]
    result = run_script(
        "hpo.py", tmp_path, {**FAST_HPS, "epochs": 1}, {"training": sample_dataset}, launcher=launcher
    )
    assert result.returncode == 0, result.log
    assert result.stdout.count("wrote model artifacts") == 1
    recorded = json.loads((result.output_data_dir / "metrics.json").read_text())
    assert recorded["world_size"] == 2 and recorded["history"]["epochs"][0]["train"]["count"] == 160
