"""profiler-report.html (self-contained: plots embedded as base64 PNG) and loss.png.

Findings mirror the checks of SageMaker's ProfilerReport (StepOutlier, Dataloader/IO bottleneck,
CPUBottleneck, LowGPUUtilization, BatchSize, MaxInitializationTime), each with a recommendation.
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: no display in a training container
import matplotlib.pyplot as plt
import numpy as np

from dogclf.profiling import ProfileResult


@dataclass
class Finding:
    rule: str
    triggered: bool
    detail: str
    recommendation: str


def _percent(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole > 0 else 0.0


def analyze(result: ProfileResult, *, step_outlier_stddev: float = 3.0) -> list[Finding]:
    findings: list[Finding] = []
    train = [s for s in result.steps if s.phase == "train"]
    heavy = [s for s in result.steps if s.phase == "train" or s.phase.startswith("features:")]
    durations = np.array([s.data_seconds + s.compute_seconds for s in train]) if train else np.array([])

    if len(durations) >= 10:
        mean, std = float(durations.mean()), float(durations.std())
        outliers = int((durations > mean + step_outlier_stddev * std).sum()) if std > 0 else 0
        findings.append(
            Finding(
                "StepOutlier",
                outliers > 0,
                f"{outliers} of {len(durations)} training steps took longer than mean {mean * 1000:.1f} ms + "
                f"{step_outlier_stddev:g} x std {std * 1000:.1f} ms",
                "Look for stalls at those steps (checkpointing, evaluation, data loader restarts, "
                "memory pressure)."
                if outliers
                else "No action needed.",
            )
        )
    else:
        findings.append(
            Finding("StepOutlier", False, f"only {len(durations)} training steps: too few to judge", "-")
        )

    data_time = sum(s.data_seconds for s in heavy)
    compute_time = sum(s.compute_seconds for s in heavy)
    share = _percent(data_time, data_time + compute_time)
    findings.append(
        Finding(
            "Dataloader",
            share > 50,
            f"data loading took {share:.1f}% of step time "
            f"({data_time:.2f}s data vs {compute_time:.2f}s compute "
            f"over {len(heavy)} steps that read images or train)",
            "Increase --num_workers (the instance has "
            f"{result.cpu_count} CPUs), keep feature caching on (--augment false), "
            "or use smaller/pre-resized images."
            if share > 50
            else "No action needed.",
        )
    )

    cpu = np.array([s.cpu_percent for s in result.system]) if result.system else np.array([])
    if cpu.size:
        busy = _percent(float((cpu > 90).sum()), cpu.size)
        findings.append(
            Finding(
                "CPUBottleneck",
                busy > 50,
                f"CPU above 90% in {busy:.0f}% of {cpu.size} samples (median {np.median(cpu):.0f}%)",
                "Move preprocessing off the critical path (more loader workers on a larger instance, "
                "caching features) or choose an instance with more vCPUs."
                if busy > 50
                else "No action needed.",
            )
        )
    gpu = [s.gpu_utilization for s in result.system if s.gpu_utilization is not None]
    if gpu:
        p95 = float(np.percentile(gpu, 95))
        findings.append(
            Finding(
                "LowGPUUtilization",
                p95 < 70,
                f"GPU utilization p95 {p95:.0f}%",
                "The GPU waits on input or is too big for the job: increase the batch size, add loader "
                "workers, or pick a smaller GPU instance."
                if p95 < 70
                else "No action needed.",
            )
        )
        memory = [s.gpu_memory_mb for s in result.system if s.gpu_memory_mb is not None]
        findings.append(
            Finding(
                "BatchSize",
                p95 < 70,
                f"GPU utilization p95 {p95:.0f}%, peak allocated memory {max(memory or [0]):.0f} MiB",
                "Increase --batch_size (and the learning rate with it) to use the GPU better."
                if p95 < 70
                else "No action needed.",
            )
        )
    else:
        findings.append(
            Finding("LowGPUUtilization", False, f"no GPU on this instance ({result.device})", "-")
        )
    init = result.first_step_at
    findings.append(
        Finding(
            "MaxInitializationTime",
            init is not None and init > 20 * 60,
            f"first step started {init:.1f}s after the profiler began"
            if init is not None
            else "no steps recorded",
            "Initialization is slow: download data with FastFile/Pipe mode or shrink the dataset archive."
            if init is not None and init > 20 * 60
            else "No action needed.",
        )
    )
    return findings


def _figure_base64(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def plot_losses(history: dict[str, Any], path: Path | None = None):
    """Train and eval cross-entropy per step on one axis (global step numbering)."""
    figure, axis = plt.subplots(figsize=(8, 4))
    for key, label, style in (("train_step_loss", "train", "-"), ("valid_step_loss", "eval (valid)", "o")):
        points = history.get(key) or []
        if points:
            steps, losses = zip(*points, strict=True)
            axis.plot(steps, losses, style, label=label, markersize=4)
    axis.set_xlabel("step")
    axis.set_ylabel("cross-entropy loss")
    axis.set_title("Cross-entropy per step")
    axis.legend()
    axis.grid(alpha=0.3)
    if path is not None:
        figure.savefig(path, dpi=100, bbox_inches="tight")
    return figure


def _step_plot(result: ProfileResult):
    figure, axis = plt.subplots(figsize=(8, 3.5))
    heavy = [s for s in result.steps if s.phase == "train" or s.phase.startswith("features:")]
    if heavy:
        index = np.arange(len(heavy))
        data = np.array([s.data_seconds for s in heavy]) * 1000
        compute = np.array([s.compute_seconds for s in heavy]) * 1000
        axis.bar(index, data, label="data loading", color="#e6862e")
        axis.bar(index, compute, bottom=data, label="compute", color="#2e6fe6")
        axis.legend()
    axis.set_xlabel("step (feature extraction, then training)")
    axis.set_ylabel("ms")
    axis.set_title("Step time: data loading vs compute")
    return figure


def _system_plot(result: ProfileResult):
    figure, axis = plt.subplots(figsize=(8, 3.5))
    if result.system:
        at = [s.at for s in result.system]
        axis.plot(at, [s.cpu_percent for s in result.system], label="CPU %")
        axis.plot(at, [s.memory_percent for s in result.system], label="memory %")
        gpu = [s.gpu_utilization for s in result.system]
        if any(value is not None for value in gpu):
            axis.plot(at, [value or 0 for value in gpu], label="GPU %")
        axis.legend()
    axis.set_xlabel("seconds since start")
    axis.set_ylim(0, 105)
    axis.set_title("System utilization")
    return figure


def write_report(
    result: ProfileResult, history: dict[str, Any], summary: dict[str, Any], path: Path
) -> list[Finding]:
    findings = analyze(result)
    images = {
        "Step time": _figure_base64(_step_plot(result)),
        "System utilization": _figure_base64(_system_plot(result)),
        "Loss": _figure_base64(plot_losses(history)),
    }
    heavy = [s for s in result.steps if s.phase == "train" or s.phase.startswith("features:")]
    data_time = sum(s.data_seconds for s in heavy)
    compute_time = sum(s.compute_seconds for s in heavy)
    rows_findings = "".join(
        f"<tr class={'issue' if f.triggered else 'ok'}><td>{html.escape(f.rule)}</td>"
        f"<td>{'Issue found' if f.triggered else 'OK'}</td><td>{html.escape(f.detail)}</td>"
        f"<td>{html.escape(f.recommendation)}</td></tr>"
        for f in findings
    )
    rows_ops = (
        "".join(
            f"<tr><td>{html.escape(op['name'])}</td><td>{op['calls']}</td><td>{op['self_cpu_ms']:.2f}</td>"
            f"<td>{op['cpu_total_ms']:.2f}</td><td>{op['device_ms']:.2f}</td></tr>"
            for op in result.top_operators
        )
        or "<tr><td colspan=5>profiler window did not complete (too few steps)</td></tr>"
    )
    phases = "".join(f"<li>{html.escape(k)}: {v:.2f}s</li>" for k, v in result.phases.items())
    figures = "".join(
        f"<h3>{html.escape(title)}</h3><img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>"
        for title, data in images.items()
    )
    data_share = _percent(data_time, data_time + compute_time)
    document = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Profiler report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}
tr.issue td:nth-child(2){{color:#b00;font-weight:bold}}tr.ok td:nth-child(2){{color:#070}}</style></head>
<body><h1>Profiler report</h1>
<h2>Summary</h2><ul>
<li>device: {html.escape(result.device)}, CPUs: {result.cpu_count}</li>
<li>total time: {result.total_seconds:.2f}s; steps recorded: {len(result.steps)}</li>
<li>data loading {data_time:.2f}s vs compute {compute_time:.2f}s ({data_share:.1f}% data)</li>
{phases}
<li>metrics: {html.escape(json.dumps(summary))}</li></ul>
<h2>Findings and recommendations</h2>
<table><tr><th>Rule</th><th>Status</th><th>Details</th><th>Recommendation</th></tr>{rows_findings}</table>
<h2>Top operators (torch.profiler, {result.profiled_steps} profiled steps)</h2>
<table><tr><th>operator</th><th>calls</th><th>self CPU ms</th><th>CPU total ms</th><th>device ms</th></tr>
{rows_ops}</table>
<h2>Plots</h2>{figures}
</body></html>"""
    path.write_text(document, encoding="utf-8")
    return findings


def findings_json(findings: list[Finding]) -> list[dict[str, Any]]:
    return [asdict(finding) for finding in findings]
