"""Profiling for train_model.py: step timing (data loading vs compute), a torch.profiler window and
system metrics sampled in a background thread. report.py turns the result into profiler-report.html.

System metrics are sampled every 0.2 s (SageMaker's finest ProfilingIntervalInMilliseconds is 100 ms),
so a 20 s job draws a curve of about 100 points, plus one sample when profiling starts and one when
it ends. GPU utilization comes from NVML through torch when pynvml is installed, else from
``nvidia-smi`` (the driver ships it); neither exists on CPU instances.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psutil
import torch
from torch.profiler import ProfilerActivity, profile, schedule

from dogclf.loop import Callbacks

SAMPLE_INTERVAL_S = 0.2


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
    iowait_percent: float = 0.0
    gpu_memory_mb: float | None = None
    gpu_memory_percent: float | None = None
    gpu_utilization: float | None = None


def _nvidia_smi_utilization() -> float | None:
    """GPU 0's utilization in percent from nvidia-smi, or None where it cannot say."""
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return None
    try:
        completed = subprocess.run(
            [executable, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "--id=0"],
            capture_output=True,
            text=True,
            timeout=2,
            check=True,
        )
        return float(completed.stdout.strip().splitlines()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def gpu_utilization() -> float | None:
    try:
        return float(torch.cuda.utilization())
    except Exception:  # needs pynvml; nvidia-smi is the fallback
        return _nvidia_smi_utilization()


class SystemMonitor:
    """Samples CPU, I/O wait, memory (and GPU memory/utilization when present) every ``interval``
    seconds, from ``start`` to ``stop`` inclusive."""

    def __init__(self, interval: float = SAMPLE_INTERVAL_S) -> None:
        self.interval = interval
        self.samples: list[SystemSample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="system-monitor", daemon=True)
        self._process = psutil.Process()
        self._origin = time.perf_counter()

    def start(self, origin: float) -> None:
        self._origin = origin
        psutil.cpu_percent(interval=None)  # the first calls only prime the counters
        psutil.cpu_times_percent(interval=None)
        self.samples.append(self.sample())
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.samples.append(self.sample())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(self.sample())

    def sample(self) -> SystemSample:
        gpu_memory = gpu_memory_percent = gpu_util = None
        if torch.cuda.is_available():
            free, total = torch.cuda.mem_get_info()
            gpu_memory = (total - free) / 2**20
            gpu_memory_percent = 100.0 * (total - free) / total
            gpu_util = gpu_utilization()
        times = psutil.cpu_times_percent(interval=None)
        return SystemSample(
            at=time.perf_counter() - self._origin,
            cpu_percent=psutil.cpu_percent(interval=None),
            memory_percent=psutil.virtual_memory().percent,
            process_rss_mb=self._process.memory_info().rss / 2**20,
            iowait_percent=float(getattr(times, "iowait", 0.0)),
            gpu_memory_mb=gpu_memory,
            gpu_memory_percent=gpu_memory_percent,
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
    num_workers: int = 0
    cpu_count: int = field(default_factory=lambda: psutil.cpu_count() or 1)


class ProfilingCallbacks(Callbacks):
    """Records every step; runs torch.profiler over steps [wait, wait+warmup+active) of the job."""

    def __init__(
        self,
        *,
        wait: int = 1,
        warmup: int = 1,
        active: int = 5,
        interval: float = SAMPLE_INTERVAL_S,
        num_workers: int = 0,
    ) -> None:
        self.origin = time.perf_counter()
        self.num_workers = num_workers
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
            num_workers=self.num_workers,
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
