"""The SageMaker training-container contract, as sagemaker-training defines it.

Scripts read their defaults from these variables so they also run by hand (outside a container the
defaults fall back to folders under the current directory).

Data channels (both shapes are supported; separate channels win when both are set):
- ``SM_CHANNEL_TRAIN`` / ``SM_CHANNEL_VALID`` / ``SM_CHANNEL_TEST``: each holds the class folders
  ``<NNN.Class_Name>/<image>`` of one split.
- ``SM_CHANNEL_TRAINING``: one channel holding the whole dataset, ``{train,valid,test}/<class>/...``,
  at its top or inside one top-level folder (e.g. the extracted ``dogImages/``).
A split's folder holds either the class folders or tar shards ``*.tar`` whose members are
``<NNN.Class_Name>/<image>`` (what ingest writes: ``<split>-00000.tar``, ...); dogclf.data reads both.
"""

from __future__ import annotations

import json
import os
import socket


def str2bool(value: str | bool) -> bool:
    """Parse a boolean hyperparameter: the toolkit passes them as "True"/"False" strings."""
    if isinstance(value, bool):
        return value
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "y", "on"):
        return True
    if lowered in ("false", "0", "no", "n", "off"):
        return False
    raise ValueError(f"expected a boolean (true/false), got {value!r}")


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def model_dir() -> str:
    return env_str("SM_MODEL_DIR", "model") or "model"


def output_data_dir() -> str:
    return env_str("SM_OUTPUT_DATA_DIR", "output") or "output"


def hosts() -> list[str]:
    raw = env_str("SM_HOSTS")
    return list(json.loads(raw)) if raw else [current_host()]


def current_host() -> str:
    return env_str("SM_CURRENT_HOST") or socket.gethostname()


def num_gpus() -> int:
    raw = env_str("SM_NUM_GPUS")
    if raw is not None:
        return int(raw)
    try:
        import torch

        return torch.cuda.device_count()
    except ImportError:  # pragma: no cover - torch is always present in the training container
        return 0


def num_cpus() -> int:
    raw = env_str("SM_NUM_CPUS")
    return int(raw) if raw else (os.cpu_count() or 1)


def channel(name: str) -> str | None:
    return env_str(f"SM_CHANNEL_{name.upper()}")
