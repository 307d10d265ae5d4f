"""Mixed precision per device: fp16 + GradScaler before Ampere, bf16 from Ampere on, fp32 on CPU.

T4 (sm_75, ml.g4dn, the usual GPU training instance) has fp16 tensor cores but no native bf16: bf16
autocast there runs emulated and slower than fp32. fp16 has a narrow exponent range, so the loss is
scaled (torch.amp.GradScaler) to keep small gradients from flushing to zero. A100/A10G/L4/H100
(sm_80+) have native bf16, which has fp32's exponent range and needs no scaler. The CPU path stays in
fp32: the CPU instances are for small runs and tests, where numerics matter more than speed.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

# The first compute capability with native bf16 tensor cores (Ampere).
BF16_MIN_CAPABILITY = (8, 0)


@dataclass(frozen=True)
class Precision:
    name: str  # "fp32" | "fp16" | "bf16"
    autocast_dtype: torch.dtype | None
    grad_scaler: bool


FP32 = Precision("fp32", None, False)
FP16 = Precision("fp16", torch.float16, True)
BF16 = Precision("bf16", torch.bfloat16, False)


def select_precision(device_type: str, capability: tuple[int, int] | None = None) -> Precision:
    """The precision for a device type ("cpu", "cuda", ...) and, for CUDA, its compute capability."""
    if device_type != "cuda":
        return FP32
    if capability is None:
        raise ValueError("a CUDA device needs its compute capability to choose a precision")
    return BF16 if tuple(capability) >= BF16_MIN_CAPABILITY else FP16


def for_device(device: torch.device) -> Precision:
    capability = torch.cuda.get_device_capability(device) if device.type == "cuda" else None
    return select_precision(device.type, capability)


def autocast(precision: Precision, device: torch.device) -> contextlib.AbstractContextManager:
    if precision.autocast_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=precision.autocast_dtype)


def grad_scaler(precision: Precision, device: torch.device) -> torch.amp.GradScaler:
    """A scaler that is a no-op (enabled=False) unless the precision needs loss scaling."""
    return torch.amp.GradScaler(device.type, enabled=precision.grad_scaler)
