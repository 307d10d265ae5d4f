"""How a job that runs the frozen backbone over many images uses its instance: threads and memory format.

Measured with bench/bench_backbone.py (ResNet18 forward, batch 64, on 2 cores): at 224 px the
channels_last memory format is about 25% faster than the default on CPU (oneDNN's preferred layout)
and tensor cores prefer it on GPU too; the values differ only by float rounding (the features job's
test compares them). The features job (features.py) and the profiled job's Debugger steps
(train_model.py) run alone on their instance, so they use all of its CPUs for the forward pass
(``use_instance_threads``) whatever OMP_NUM_THREADS the launcher set: the local twin sets it to share
the cores between the concurrent trials of a tuning job (localcloud/sagemaker/runners/training.py).
"""

from __future__ import annotations

import torch
from torch import nn

from dogclf import sm_env

MEMORY_FORMAT = torch.channels_last


def use_instance_threads(requested: int = 0) -> int:
    """Intra-op threads for the forward pass: ``requested``, or (0) the instance's CPUs (SM_NUM_CPUS).

    The DataLoader's workers decode on the same cores, but decoding is a small fraction of the
    forward's cost at 224 px (under a tenth of its CPU time), and a thread short of the cores leaves
    them idle while the main process waits for the forward; the features job lowers its workers'
    priority instead (feature_pass.py; bench_backbone.py measures both)."""
    threads = requested if requested > 0 else sm_env.num_cpus()
    torch.set_num_threads(max(1, threads))
    return torch.get_num_threads()


def to_fast_layout(model: nn.Module) -> nn.Module:
    """The model's 4-d weights in MEMORY_FORMAT (in place; returns the model)."""
    return model.to(memory_format=MEMORY_FORMAT)  # type: ignore[call-overload]  # torch's stub lacks it


def fast_input(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch of images on ``device`` in MEMORY_FORMAT (what to_fast_layout's convolutions expect)."""
    return images.to(device, memory_format=MEMORY_FORMAT, non_blocking=True)
