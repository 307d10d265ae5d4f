"""Mixed precision chosen per device from its compute capability (no GPU needed to test the choice)."""

from __future__ import annotations

import pytest
import torch

from dogclf import precision
from dogclf.precision import select_precision


@pytest.mark.parametrize(
    ("capability", "name", "dtype", "scaler"),
    [
        ((7, 0), "fp16", torch.float16, True),  # V100 (ml.p3)
        ((7, 5), "fp16", torch.float16, True),  # T4 (ml.g4dn, the usual GPU instance)
        ((8, 0), "bf16", torch.bfloat16, False),  # A100 (ml.p4d)
        ((8, 6), "bf16", torch.bfloat16, False),  # A10G (ml.g5)
        ((8, 9), "bf16", torch.bfloat16, False),  # L4 (ml.g6)
        ((9, 0), "bf16", torch.bfloat16, False),  # H100 (ml.p5)
    ],
)
def test_cuda_precision_follows_native_bf16_support(capability, name, dtype, scaler):
    chosen = select_precision("cuda", capability)
    assert (chosen.name, chosen.autocast_dtype, chosen.grad_scaler) == (name, dtype, scaler)


@pytest.mark.parametrize("device_type", ["cpu", "mps"])
def test_other_devices_stay_in_fp32(device_type):
    chosen = select_precision(device_type, None)
    assert chosen.autocast_dtype is None and not chosen.grad_scaler


def test_cuda_without_capability_is_an_error():
    with pytest.raises(ValueError, match="compute capability"):
        select_precision("cuda", None)


def test_cpu_training_is_unchanged():
    """fp32 on CPU: no autocast and a disabled scaler that passes the loss through untouched."""
    device = torch.device("cpu")
    chosen = precision.for_device(device)
    scaler = precision.grad_scaler(chosen, device)
    assert not scaler.is_enabled()
    with precision.autocast(chosen, device):
        out = torch.nn.Linear(3, 2)(torch.randn(4, 3))
    assert out.dtype == torch.float32


def test_fp16_step_with_grad_scaler_trains():
    """The fp16 recipe (scaled backward, step, update) on whatever device is here; CUDA when present."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    chosen = precision.FP16 if device.type == "cuda" else precision.FP32
    model = torch.nn.Linear(8, 2).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    scaler = precision.grad_scaler(chosen, device)
    inputs = torch.randn(64, 8, device=device)
    targets = (inputs[:, 0] > 0).long()
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        with precision.autocast(chosen, device):
            logits = model(inputs)
        loss = torch.nn.functional.cross_entropy(logits.float(), targets)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
