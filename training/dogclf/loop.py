"""The loop, as in torchvision's reference script: train_one_epoch and evaluate, plus
extract_features (one backbone pass over a split, for the feature cache), and the Callbacks
(Debugger hook, profiler) they call at every step and phase."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dogclf import backbone_speed, distributed
from dogclf import data as data_module
from dogclf import precision as precision_module
from dogclf.model import FEATURE_DIM, FrozenBackboneClassifier
from dogclf.precision import Precision


class Callbacks:
    """Instrumentation points (Debugger hook, profiler); the defaults do nothing."""

    def on_dataset(self, counts: dict[str, int], batch_size: int, epochs: int) -> None:
        """Images per split, known before the model is built (the Debugger hook sizes itself on it)."""

    def on_model_ready(self, module: nn.Module, criterion: nn.Module) -> None:
        """``module`` is the module that runs forward/backward in the training loop."""

    def set_mode(self, mode: str) -> None:
        """The split about to run: "train", "valid" or "test"."""

    def on_scaled_backward(self, loss_scale: float) -> None:
        """fp16 only: the gradients of this step's backward pass are multiplied by ``loss_scale``."""

    def on_step(self, phase: str, data_seconds: float, compute_seconds: float) -> None:
        pass

    def on_phase(self, phase: str, seconds: float) -> None:
        pass


def _unpack(batch) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    if len(batch) == 3:
        return batch[0], batch[1], batch[2]
    return batch[0], batch[1], []


def _step_count(loader: DataLoader, context: distributed.DistContext) -> int:
    """Steps per epoch, equal on every rank (DDP hangs if one rank takes an extra step)."""
    steps = len(loader)
    if context.distributed:
        tensor = torch.tensor([steps], device=context.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
        steps = int(tensor.item())
    return steps


def train_one_epoch(
    module: nn.Module,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader,
    *,
    context: distributed.DistContext,
    tracker: data_module.BadImageTracker,
    callbacks: Callbacks,
    history: dict[str, list],
    precision: Precision = precision_module.FP32,
    scaler: torch.amp.GradScaler | None = None,
    epoch: int = 0,
) -> dict[str, float]:
    module.train()
    callbacks.set_mode("train")
    steps = _step_count(loader, context)
    loss_sum, correct, count = 0.0, 0.0, 0.0
    iterator = iter(loader)
    for step in range(steps):
        started = time.perf_counter()
        inputs, targets, bad = _unpack(next(iterator))
        tracker.add("train", bad)
        loaded = time.perf_counter()
        if targets.numel() == 0:
            continue
        inputs = inputs.to(context.device, non_blocking=True)
        targets = targets.to(context.device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with precision_module.autocast(precision, context.device):
            logits = module(inputs)
        loss = criterion(logits.float(), targets)
        if scaler is not None and scaler.is_enabled():
            # fp16: scale the loss so small gradients survive, unscale before the step (skips inf/NaN).
            scaler.scale(loss).backward()
            callbacks.on_scaled_backward(scaler.get_scale())
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        batch_loss = loss.item()
        _record_loss(history, "train_step_loss", epoch + (step + 1) / steps, batch_loss)
        loss_sum += batch_loss * targets.numel()
        correct += (logits.argmax(dim=1) == targets).sum().item()
        count += targets.numel()
        callbacks.on_step("train", loaded - started, time.perf_counter() - loaded)
    loss_sum, correct, count = distributed.all_reduce_sum([loss_sum, correct, count], context)
    return {"loss": loss_sum / max(count, 1), "accuracy": correct / max(count, 1), "count": count}


@torch.no_grad()
def evaluate(
    module: nn.Module,
    criterion: nn.Module,
    loader: DataLoader,
    *,
    split: str,
    context: distributed.DistContext,
    tracker: data_module.BadImageTracker,
    callbacks: Callbacks,
    history: dict[str, list],
    precision: Precision = precision_module.FP32,
    epoch: int = 0,
) -> dict[str, float]:
    module.eval()
    callbacks.set_mode(split)
    loss_sum, correct, count = 0.0, 0.0, 0.0
    steps = max(len(loader), 1)
    for step, batch in enumerate(loader):
        started = time.perf_counter()
        inputs, targets, bad = _unpack(batch)
        tracker.add(split, bad)
        if targets.numel() == 0:
            continue
        inputs, targets = inputs.to(context.device), targets.to(context.device)
        with precision_module.autocast(precision, context.device):
            logits = module(inputs)
        loss = criterion(logits.float(), targets)
        _record_loss(history, f"{split}_step_loss", epoch + (step + 1) / steps, loss.item())
        loss_sum += loss.item() * targets.numel()
        correct += (logits.argmax(dim=1) == targets).sum().item()
        count += targets.numel()
        callbacks.on_step(split, 0.0, time.perf_counter() - started)
    loss_sum, correct, count = distributed.all_reduce_sum([loss_sum, correct, count], context)
    return {"loss": loss_sum / max(count, 1), "accuracy": correct / max(count, 1), "count": count}


@torch.no_grad()
def extract_features(
    model: FrozenBackboneClassifier,
    loader: DataLoader,
    *,
    split: str,
    context: distributed.DistContext,
    tracker: data_module.BadImageTracker,
    callbacks: Callbacks,
    precision: Precision = precision_module.FP32,
    progress: Callable[[int], None] | None = None,
    fast_layout: bool = False,
) -> TensorDataset:
    """One backbone pass over a split -> (features, targets) kept in memory (512 floats per image).

    ``progress`` is called after each batch with the number of images it held (bad ones included).
    ``fast_layout``: the model was put in backbone_speed's memory format; the inputs follow it."""
    model.eval()
    features, targets_all = [], []
    iterator = iter(loader)
    while True:
        started = time.perf_counter()
        try:
            inputs, targets, bad = _unpack(next(iterator))
        except StopIteration:
            break
        tracker.add(split, bad)
        loaded = time.perf_counter()
        if targets.numel() == 0:
            if progress is not None:
                progress(len(bad))
            continue
        if fast_layout:
            inputs = backbone_speed.fast_input(inputs, context.device)
        else:
            inputs = inputs.to(context.device, non_blocking=True)
        with precision_module.autocast(precision, context.device):
            batch_features = model.features(inputs)
        features.append(batch_features.float())
        targets_all.append(targets.to(context.device))
        callbacks.on_step(f"features:{split}", loaded - started, time.perf_counter() - loaded)
        if progress is not None:
            progress(targets.numel() + len(bad))
    if not features:
        return TensorDataset(
            torch.empty(0, FEATURE_DIM, device=context.device), torch.empty(0, dtype=torch.long)
        )
    return TensorDataset(torch.cat(features), torch.cat(targets_all))


def _record_loss(history: dict[str, list], key: str, epoch_position: float, loss: float) -> None:
    """Per-step losses as [position in epochs, loss]: step i of n in epoch e sits at e + (i + 1) / n,
    so train and validation losses share one x axis in loss.png."""
    history[key].append([round(epoch_position, 6), loss])
