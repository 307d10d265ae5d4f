"""Helpers that run the training scripts the way a SageMaker training container does.

``sagemaker_job`` lays out a ``SAGEMAKER_BASE_DIR`` (input/config/*.json, input/data/<channel>/,
model/, output/data/), asks the real sagemaker-training toolkit (5.1.4, as in the image) for the
environment variables and command-line arguments it would give the entry point, and runs the script
with them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from dogclf.debugger.hook_config import debug_hook_config
from tests.support.fixtures import fixture_text

REPO = Path(__file__).resolve().parents[2]
TRAINING_DIR = REPO / "training"

PYTHON = sys.executable
SCRIPT_TIMEOUT_S = 300
# The toolkit resolves its paths from SAGEMAKER_BASE_DIR at import time, so ask it in a fresh process.
_TOOLKIT_PROBE = fixture_text("training/toolkit_probe.py")


@dataclass
class JobResult:
    returncode: int
    stdout: str
    stderr: str
    base_dir: Path
    env: dict[str, str]
    argv: list[str]

    @property
    def model_dir(self) -> Path:
        return self.base_dir / "model"

    @property
    def output_data_dir(self) -> Path:
        return self.base_dir / "output" / "data"

    @property
    def log(self) -> str:
        return self.stdout + self.stderr


def toolkit_environment(
    base_dir: Path,
    hyperparameters: dict[str, object],
    channels: dict[str, Path],
    *,
    hosts: tuple[str, ...] = ("algo-1",),
    current_host: str = "algo-1",
    entry_point: str = "hpo.py",
) -> tuple[dict[str, str], list[str]]:
    """Write the files SageMaker writes into a container and return the toolkit's (env, argv)."""
    config = base_dir / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    data = base_dir / "input" / "data"
    for name, source in channels.items():
        target = data / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(source, target_is_directory=True)
    # SageMaker stores every hyperparameter value as a JSON-encoded string.
    all_hps = {
        **hyperparameters,
        "sagemaker_program": entry_point,
        "sagemaker_submit_directory": "/opt/ml/code",
    }
    (config / "hyperparameters.json").write_text(json.dumps({k: json.dumps(v) for k, v in all_hps.items()}))
    (config / "inputdataconfig.json").write_text(
        json.dumps(
            {
                name: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"}
                for name in channels
            }
        )
    )
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": current_host, "hosts": list(hosts), "network_interface_name": "eth0"})
    )
    probe_env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base_dir)}
    probe = subprocess.run(
        [PYTHON, "-c", _TOOLKIT_PROBE], env=probe_env, capture_output=True, text=True, timeout=120, check=True
    )
    payload = json.loads(probe.stdout.strip().splitlines()[-1])
    return {k: str(v) for k, v in payload["env"].items()}, [str(a) for a in payload["argv"]]


def prepare_script(
    script: str,
    base_dir: Path,
    hyperparameters: dict[str, object],
    channels: dict[str, Path],
    *,
    extra_env: dict[str, str] | None = None,
    launcher: list[str] | None = None,
    hosts: tuple[str, ...] = ("algo-1",),
    current_host: str = "algo-1",
) -> tuple[list[str], dict[str, str], list[str]]:
    """(command, env, toolkit argv) for running ``script`` as the toolkit would."""
    env_vars, argv = toolkit_environment(
        base_dir, hyperparameters, channels, entry_point=script, hosts=hosts, current_host=current_host
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SM_", "SMDEBUG"))},
        **env_vars,
        "SAGEMAKER_BASE_DIR": str(base_dir),
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",  # two cores shared by everyone: no oversubscription
        **(extra_env or {}),
    }
    return [*(launcher or [PYTHON]), str(TRAINING_DIR / script), *argv], env, argv


def run_script(
    script: str, base_dir: Path, hyperparameters: dict[str, object], channels: dict[str, Path], **options
) -> JobResult:
    command, env, argv = prepare_script(script, base_dir, hyperparameters, channels, **options)
    completed = subprocess.run(
        command, env=env, cwd=base_dir, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_S
    )
    return JobResult(completed.returncode, completed.stdout, completed.stderr, base_dir, env, argv)


def start_script(
    script: str, base_dir: Path, hyperparameters: dict[str, object], channels: dict[str, Path], **options
) -> tuple[subprocess.Popen, JobResult]:
    """Start without waiting (for multi-host runs); fill the JobResult from communicate()."""
    command, env, argv = prepare_script(script, base_dir, hyperparameters, channels, **options)
    process = subprocess.Popen(
        command, env=env, cwd=base_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    return process, JobResult(-1, "", "", base_dir, env, argv)


# Small, fast settings that still learn on the sample (random-init backbone: no downloads here).
FAST_HPS: dict[str, object] = {
    "weights": "none",
    "image_size": 64,
    "epochs": 2,
    "batch_size": 32,
    "learning_rate": 0.001,
    "num_workers": 0,
    "augment": False,
}


def write_tar_shards(tree: Path, out: Path, members_per_shard: int) -> dict[str, Path]:
    """The dataset folder ``tree`` as ingest shapes it: ``out/<split>/<split>-NNNNN.tar`` with members
    ``<class_dir>/<image>``, written here with the standard library's tarfile (not the ingest code).
    Members go in reverse name order, so reading them back in order is not an accident of the input."""
    import tarfile

    split_dirs = {}
    for split in ("train", "valid", "test"):
        files = [path for path in (tree / split).rglob("*") if path.is_file()]
        names = sorted(path.relative_to(tree / split).as_posix() for path in files)
        names.reverse()
        split_dir = out / split
        split_dir.mkdir(parents=True)
        for number, start in enumerate(range(0, len(names), members_per_shard)):
            with tarfile.open(split_dir / f"{split}-{number:05d}.tar", "w", format=tarfile.PAX_FORMAT) as tar:
                for name in names[start : start + members_per_shard]:
                    tar.add(tree / split / name, arcname=name)
        split_dirs[split] = split_dir
    return split_dirs


def run_toolkit_entry(
    python: Path, base: Path, timeout: float = 600, environment: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The toolkit's own entry (``python -m sagemaker_training.cli.train``), as the local emulator and
    the container run it: ``base`` laid out like /opt/ml with code/ and input/config/ written."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SM_", "SMDEBUG", "SAGEMAKER_", "VIRTUAL_ENV", "PYTHONPATH"))
    }
    env.update(
        {
            "SAGEMAKER_BASE_DIR": str(base),
            "SM_STUDIO_LOCAL_MODE": "true",  # no cluster DNS to wait for
            "SMDEBUG_CONFIG_FILE_PATH": str(base / "input" / "config" / "debughookconfig.json"),
            "SMPROFILER_CONFIG_PATH": str(base / "input" / "config" / "profilerconfig.json"),
            "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": "1",
            **(environment or {}),  # the job's Environment, as the emulator applies it
        }
    )
    return subprocess.run(
        [str(python), "-m", "sagemaker_training.cli.train"],
        cwd=base / "code",
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def hook_config_file(folder: Path, hps: dict[str, object], dataset: dict[str, int]) -> Path:
    """What the emulator writes from the request's DebugHookConfig: the Lambda's config, sized for
    ``dataset`` (images per class of each split) and ``hps``, plus LocalPath under ``folder``."""
    config = debug_hook_config(
        train_examples=dataset["classes"] * dataset["train"],
        valid_examples=dataset["classes"] * dataset["valid"],
        batch_size=int(hps["batch_size"]),  # type: ignore[call-overload]
        epochs=int(hps["epochs"]),  # type: ignore[call-overload]
    )
    config["LocalPath"] = str(folder / "sm-tensors")
    path = folder / "debughookconfig.json"
    path.write_text(json.dumps(config))
    return path
