"""Profiling for train_model.py: step timing (data loading vs compute), a torch.profiler window and
system metrics sampled in a background thread. report.py turns the result into profiler-report.html.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psutil
import torch
from torch.profiler import ProfilerActivity, profile, schedule

from dogclf.engine import Callbacks


@dataclass
class StepRecord:
    phase: str
    started: float  # seconds since the profiler started
    data_seconds: float
    compute_seconds: float


@dataclass
class SystemSample:
    at: float
    cpu_percent: float
    memory_percent: float
    process_rss_mb: float
    gpu_memory_mb: float | None = None
    gpu_utilization: float | None = None


class SystemMonitor:
    """Samples CPU, memory (and GPU memory/utilization when present) every ``interval`` seconds."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.samples: list[SystemSample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="system-monitor", daemon=True)
        self._process = psutil.Process()
        self._origin = time.perf_counter()

    def start(self, origin: float) -> None:
        self._origin = origin
        psutil.cpu_percent(interval=None)  # the first call only primes the counter
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(self.sample())

    def sample(self) -> SystemSample:
        gpu_memory = gpu_util = None
        if torch.cuda.is_available():
            gpu_memory = torch.cuda.memory_allocated() / 2**20
            try:
                gpu_util = float(torch.cuda.utilization())
            except Exception:  # needs pynvml / NVML; memory alone still tells a story
                gpu_util = None
        return SystemSample(
            at=time.perf_counter() - self._origin,
            cpu_percent=psutil.cpu_percent(interval=None),
            memory_percent=psutil.virtual_memory().percent,
            process_rss_mb=self._process.memory_info().rss / 2**20,
            gpu_memory_mb=gpu_memory,
            gpu_utilization=gpu_util,
        )


@dataclass
class ProfileResult:
    steps: list[StepRecord]
    phases: dict[str, float]
    system: list[SystemSample]
    top_operators: list[dict[str, Any]]
    profiled_steps: int
    first_step_at: float | None
    total_seconds: float
    device: str
    cpu_count: int = field(default_factory=lambda: psutil.cpu_count() or 1)


class ProfilingCallbacks(Callbacks):
    """Records every step; runs torch.profiler over steps [wait, wait+warmup+active) of the job."""

    def __init__(self, *, wait: int = 1, warmup: int = 1, active: int = 5, interval: float = 0.5) -> None:
        self.origin = time.perf_counter()
        self.steps: list[StepRecord] = []
        self.phases: dict[str, float] = {}
        self.monitor = SystemMonitor(interval)
        activities = [ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(ProfilerActivity.CUDA)
        self.window = wait + warmup + active
        self.profiler = profile(
            activities=activities, schedule=schedule(wait=wait, warmup=warmup, active=active, repeat=1)
        )
        self._profiled = 0
        self._stopped = False

    def start(self) -> None:
        self.origin = time.perf_counter()
        self.monitor.start(self.origin)
        self.profiler.start()

    def on_step(self, phase: str, data_seconds: float, compute_seconds: float) -> None:
        now = time.perf_counter() - self.origin
        self.steps.append(
            StepRecord(phase, now - data_seconds - compute_seconds, data_seconds, compute_seconds)
        )
        if not self._stopped:
            self.profiler.step()
            self._profiled += 1
            if self._profiled >= self.window:
                self._stop_profiler()

    def on_phase(self, phase: str, seconds: float) -> None:
        self.phases[phase] = seconds

    def _stop_profiler(self) -> None:
        if not self._stopped:
            self._stopped = True
            self.profiler.stop()

    def finish(self, device: str) -> ProfileResult:
        self._stop_profiler()
        self.monitor.stop()
        return ProfileResult(
            steps=self.steps,
            phases=self.phases,
            system=self.monitor.samples,
            top_operators=self._top_operators(),
            profiled_steps=min(self._profiled, self.window),
            first_step_at=self.steps[0].started if self.steps else None,
            total_seconds=time.perf_counter() - self.origin,
            device=device,
        )

    def _top_operators(self, limit: int = 15) -> list[dict[str, Any]]:
        try:
            averages = self.profiler.key_averages()
        except (AssertionError, RuntimeError):  # the window never completed (fewer steps than wait+warmup)
            return []
        rows = sorted(averages, key=lambda event: event.self_cpu_time_total, reverse=True)[:limit]
        return [
            {
                "name": event.key,
                "calls": event.count,
                "self_cpu_ms": event.self_cpu_time_total / 1000,
                "cpu_total_ms": event.cpu_time_total / 1000,
                "device_ms": getattr(event, "self_device_time_total", 0.0) / 1000,
            }
            for event in rows
        ]
