"""profiler-report.html (self-contained: plots embedded as base64 PNG), loss.png and the
ProfilerReport verdict.

The findings follow the single-instance rules of SageMaker's ProfilerReport
(contract.PROFILER_RULE_NAMES) with AWS's default thresholds. Two adaptations, both said in the report:
- AWS's rules skip the first ``patience`` = 1000 data points (about 8 minutes at 500 ms); a short job
  would never be judged, so here only the first 10% of the samples are skipped.
- Rules about the GPU, or about the CPU starving the GPU (CPUBottleneck, IOBottleneck's GPU
  condition), say "no GPU: not applicable" on a CPU instance and never trigger there.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: no display in a training container
import matplotlib.pyplot as plt
import numpy as np

from dogclf.contract import (
    ISSUES_FOUND,
    NO_ISSUES_FOUND,
    PROFILER_FINDINGS_KEY,
    PROFILER_REPORT_RULE,
    PROFILER_RULE_NAMES,
)
from dogclf.profiling.sampler import ProfileResult, SystemSample

NOT_APPLICABLE_NO_GPU = "no GPU: not applicable"


@dataclass
class Finding:
    rule: str
    triggered: bool
    detail: str
    recommendation: str


def _percent(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole > 0 else 0.0


def _judged(samples: list[SystemSample]) -> list[SystemSample]:
    """The samples a rule judges: all but the first 10% (AWS: the first ``patience`` points)."""
    return samples[len(samples) // 10 :]


def _gpu(samples: list[SystemSample]) -> list[SystemSample]:
    return [s for s in samples if s.gpu_utilization is not None]


def _no_gpu(rule: str, result: ProfileResult) -> Finding:
    return Finding(rule, False, f"{NOT_APPLICABLE_NO_GPU} ({result.device})", "-")


def _step_outlier(result: ProfileResult, stddev: float = 3.0, n_outliers: int = 10) -> Finding:
    """AWS StepOutlier(stddev=3, n_outliers=10): more than n_outliers training steps slower than
    mean + stddev x std."""
    durations = np.array([s.data_seconds + s.compute_seconds for s in result.steps if s.phase == "train"])
    if durations.size < 2:
        return Finding("StepOutlier", False, f"{durations.size} training steps: too few to judge", "-")
    mean, std = float(durations.mean()), float(durations.std())
    outliers = int((durations > mean + stddev * std).sum()) if std > 0 else 0
    return Finding(
        "StepOutlier",
        outliers > n_outliers,
        f"{outliers} of {durations.size} training steps took longer than mean {mean * 1000:.0f} ms + "
        f"{stddev:g} x std {std * 1000:.0f} ms (triggers above {n_outliers} outliers)",
        "Look for stalls at those steps (checkpointing, evaluation, data loader restarts, memory pressure)."
        if outliers > n_outliers
        else "No action needed.",
    )


def _dataloader(result: ProfileResult, min_threshold: float = 70, max_threshold: float = 200) -> Finding:
    """AWS Dataloader(min_threshold=70, max_threshold=200): parallel data loader processes as a
    percentage of the CPU cores; plus how much of the step time loading took."""
    heavy = [s for s in result.steps if s.phase == "train" or s.phase.startswith("features:")]
    data_time = sum(s.data_seconds for s in heavy)
    compute_time = sum(s.compute_seconds for s in heavy)
    loaders = max(result.num_workers, 1)  # 0 workers: the main process loads
    share = _percent(loaders, result.cpu_count)
    triggered = share < min_threshold or share > max_threshold
    return Finding(
        "Dataloader",
        triggered,
        f"{loaders} data loader process(es) for {result.cpu_count} CPU cores ({share:.0f}%, expected "
        f"{min_threshold:g}-{max_threshold:g}%); "
        f"loading took {_percent(data_time, data_time + compute_time):.0f}% "
        f"of step time ({data_time:.1f} s data vs {compute_time:.1f} s compute)",
        f"Set --num_workers near the number of cores ({result.cpu_count})."
        if triggered
        else "No action needed.",
    )


def _cpu_bottleneck(
    result: ProfileResult, threshold: float = 50, gpu_threshold: float = 10, cpu_threshold: float = 90
) -> Finding:
    """AWS CPUBottleneck(threshold=50, gpu_threshold=10, cpu_threshold=90): CPU above cpu_threshold
    while the GPU is below gpu_threshold, in more than threshold% of the samples."""
    samples = _gpu(_judged(result.system))
    if not samples:
        return _no_gpu("CPUBottleneck", result)
    bottlenecks = sum(
        1 for s in samples if s.cpu_percent > cpu_threshold and (s.gpu_utilization or 0) < gpu_threshold
    )
    share = _percent(bottlenecks, len(samples))
    return Finding(
        "CPUBottleneck",
        share > threshold,
        f"CPU > {cpu_threshold:g}% while GPU < {gpu_threshold:g}% in {share:.0f}% of {len(samples)} samples",
        "Move preprocessing off the critical path: more loader workers, a larger instance, cached features."
        if share > threshold
        else "No action needed.",
    )


def _io_bottleneck(
    result: ProfileResult, threshold: float = 50, gpu_threshold: float = 10, io_threshold: float = 50
) -> Finding:
    """AWS IOBottleneck(threshold=50, gpu_threshold=10, io_threshold=50): I/O wait above io_threshold
    (while the GPU idles, on GPU instances) in more than threshold% of the samples."""
    samples = _judged(result.system)
    if not samples:
        return Finding("IOBottleneck", False, "no system samples", "-")
    has_gpu = any(s.gpu_utilization is not None for s in samples)
    waiting = sum(
        1
        for s in samples
        if s.iowait_percent > io_threshold and (not has_gpu or (s.gpu_utilization or 0) < gpu_threshold)
    )
    share = _percent(waiting, len(samples))
    return Finding(
        "IOBottleneck",
        share > threshold,
        f"I/O wait > {io_threshold:g}% in {share:.0f}% of {len(samples)} samples "
        f"(median {np.median([s.iowait_percent for s in samples]):.0f}%)",
        "Use FastFile/Pipe input mode or pre-resized images; read from local disk."
        if share > threshold
        else "No action needed.",
    )


def _low_gpu_utilization(
    result: ProfileResult, threshold_p95: float = 70, threshold_p5: float = 10
) -> Finding:
    """AWS LowGPUUtilization(threshold_p95=70, threshold_p5=10): p95 below threshold_p95, or p5 below
    threshold_p5 while p95 is high (fluctuating utilization)."""
    samples = _gpu(_judged(result.system))
    if not samples:
        return _no_gpu("LowGPUUtilization", result)
    values = [s.gpu_utilization or 0.0 for s in samples]
    p95, p5 = float(np.percentile(values, 95)), float(np.percentile(values, 5))
    low, fluctuating = p95 < threshold_p95, p95 >= threshold_p95 and p5 < threshold_p5
    return Finding(
        "LowGPUUtilization",
        low or fluctuating,
        f"GPU utilization p95 {p95:.0f}%, p5 {p5:.0f}% over {len(values)} samples",
        "The GPU waits on input or is too big for the job: "
        "larger batches, more loader workers, a smaller GPU."
        if low or fluctuating
        else "No action needed.",
    )


def _batch_size(
    result: ProfileResult,
    cpu_threshold_p95: float = 70,
    gpu_threshold_p95: float = 70,
    gpu_memory_threshold_p95: float = 70,
) -> Finding:
    """AWS BatchSize: CPU, GPU and GPU memory p95 all below their thresholds: the batch is too small."""
    samples = _gpu(_judged(result.system))
    if not samples:
        return _no_gpu("BatchSize", result)
    cpu = float(np.percentile([s.cpu_percent for s in samples], 95))
    gpu = float(np.percentile([s.gpu_utilization or 0.0 for s in samples], 95))
    memory = float(np.percentile([s.gpu_memory_percent or 0.0 for s in samples], 95))
    triggered = cpu < cpu_threshold_p95 and gpu < gpu_threshold_p95 and memory < gpu_memory_threshold_p95
    return Finding(
        "BatchSize",
        triggered,
        f"p95: CPU {cpu:.0f}%, GPU {gpu:.0f}%, GPU memory {memory:.0f}%",
        "Increase --batch_size (and the learning rate with it) or pick a smaller instance."
        if triggered
        else "No action needed.",
    )


def _gpu_memory_increase(result: ProfileResult, increase: float = 5, window: int = 10) -> Finding:
    """AWS GPUMemoryIncrease(increase=5, window=10): GPU memory use (percent of the device) grows by
    more than ``increase`` points between the means of consecutive windows of samples."""
    samples = _gpu(_judged(result.system))
    if not samples:
        return _no_gpu("GPUMemoryIncrease", result)
    memory = [s.gpu_memory_percent or 0.0 for s in samples]
    means = [float(np.mean(memory[i : i + window])) for i in range(0, len(memory), window)]
    growth = max((b - a for a, b in itertools.pairwise(means)), default=0.0)
    return Finding(
        "GPUMemoryIncrease",
        growth > increase,
        f"largest growth between {window}-sample windows: {growth:.1f} points of GPU memory",
        "Look for tensors kept across steps (losses appended without .item(), growing caches)."
        if growth > increase
        else "No action needed.",
    )


def _max_initialization_time(result: ProfileResult, threshold_minutes: float = 20) -> Finding:
    init = result.first_step_at
    triggered = init is not None and init > threshold_minutes * 60
    return Finding(
        "MaxInitializationTime",
        triggered,
        f"first step started {init:.1f} s after the job began (threshold {threshold_minutes:g} min)"
        if init is not None
        else "no steps recorded",
        "Initialization is slow: use FastFile/Pipe mode or shrink the dataset archive."
        if triggered
        else "No action needed.",
    )


def _overall_system_usage(result: ProfileResult) -> Finding:
    """AWS OverallSystemUsage: percentiles of each metric; it reports, it never triggers."""
    samples = result.system
    if not samples:
        return Finding("OverallSystemUsage", False, "no system samples", "-")

    def p(values: list[float]) -> str:
        return "/".join(f"{np.percentile(values, q):.0f}" for q in (50, 95, 99))

    parts = [
        f"CPU {p([s.cpu_percent for s in samples])}%",
        f"memory {p([s.memory_percent for s in samples])}%",
        f"I/O wait {p([s.iowait_percent for s in samples])}%",
    ]
    gpu = _gpu(samples)
    if gpu:
        parts.append(f"GPU {p([s.gpu_utilization or 0.0 for s in gpu])}%")
        parts.append(f"GPU memory {p([s.gpu_memory_percent or 0.0 for s in gpu])}%")
    return Finding(
        "OverallSystemUsage",
        False,
        f"p50/p95/p99 over {len(samples)} samples: " + ", ".join(parts),
        "-",
    )


def analyze(result: ProfileResult) -> list[Finding]:
    """One finding per rule of contract.PROFILER_RULE_NAMES, in that order."""
    findings = {
        finding.rule: finding
        for finding in (
            _batch_size(result),
            _cpu_bottleneck(result),
            _dataloader(result),
            _gpu_memory_increase(result),
            _io_bottleneck(result),
            _low_gpu_utilization(result),
            _max_initialization_time(result),
            _overall_system_usage(result),
            _step_outlier(result),
        )
    }
    return [findings[name] for name in PROFILER_RULE_NAMES]


def profiler_verdict(findings: list[Finding]) -> dict[str, Any]:
    """The ProfilerReport entry of rule_verdicts.json (shaped like the Debugger rule verdicts)."""
    triggered = [f.rule for f in findings if f.triggered]
    return {
        "RuleConfigurationName": PROFILER_REPORT_RULE,
        "RuleEvaluationStatus": ISSUES_FOUND if triggered else NO_ISSUES_FOUND,
        "StatusDetails": f"triggered: {', '.join(triggered)}"
        if triggered
        else f"none of {len(findings)} profiler rules triggered",
        "Step": None,
        PROFILER_FINDINGS_KEY: triggered,
    }


def _figure_base64(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def plot_losses(history: dict[str, Any], path: Path | None = None):
    """Train and validation cross-entropy across the whole run on one epoch axis: every training
    step, the validation steps, each epoch's means, and the test loss at the end."""
    figure, axis = plt.subplots(figsize=(8, 4))
    train = history.get("train_step_loss") or []
    if train:
        x, y = zip(*train, strict=True)
        axis.plot(x, y, "-", color="#2e6fe6", alpha=0.45, linewidth=1, marker=".", label="train (per step)")
    valid = history.get("valid_step_loss") or []
    if valid:
        x, y = zip(*valid, strict=True)
        axis.plot(x, y, ".", color="#e6862e", alpha=0.5, label="validation (per step)")
    epochs = history.get("epochs") or []
    if epochs:
        ends = [e["epoch"] for e in epochs]
        axis.plot(
            ends, [e["train"]["loss"] for e in epochs], "o-", color="#1b3f8f", label="train (epoch mean)"
        )
        axis.plot(
            ends, [e["valid"]["loss"] for e in epochs], "s-", color="#b35900", label="validation (epoch)"
        )
    test = history.get("test_step_loss") or []
    if test and epochs:
        axis.plot(
            [epochs[-1]["epoch"]], [float(np.mean([v for _, v in test]))], "D", color="#2a9d2a", label="test"
        )
    axis.set_xlabel("epoch")
    axis.set_ylabel("cross-entropy loss")
    axis.set_title("Cross-entropy across the run")
    if train or valid:
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
    axis.set_xlabel("training step")
    axis.set_ylabel("ms")
    axis.set_title("Step time: data loading vs compute")
    return figure


def _system_plot(result: ProfileResult):
    figure, axis = plt.subplots(figsize=(8, 3.5))
    if result.system:
        at = [s.at for s in result.system]
        axis.plot(at, [s.cpu_percent for s in result.system], label="CPU %")
        axis.plot(at, [s.memory_percent for s in result.system], label="memory %")
        axis.plot(at, [s.iowait_percent for s in result.system], label="I/O wait %")
        if any(s.gpu_utilization is not None for s in result.system):
            axis.plot(at, [s.gpu_utilization or 0 for s in result.system], label="GPU %")
            axis.plot(at, [s.gpu_memory_percent or 0 for s in result.system], label="GPU memory %")
        axis.legend()
    axis.set_xlabel("seconds since start")
    axis.set_ylim(0, 105)
    axis.set_title(f"System utilization ({len(result.system)} samples)")
    return figure


def _round(value: Any) -> Any:
    """Numbers for people: 4 significant digits, recursively."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {key: _round(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_round(item) for item in value]
    return value


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
            f"<tr><td>{html.escape(op['name'])}</td><td>{op['calls']}</td><td>{op['self_cpu_ms']:.1f}</td>"
            f"<td>{op['cpu_total_ms']:.1f}</td><td>{op['device_ms']:.1f}</td></tr>"
            for op in result.top_operators
        )
        or "<tr><td colspan=5>profiler window did not complete (too few steps)</td></tr>"
    )
    phases = "".join(f"<li>{html.escape(k)}: {v:.1f} s</li>" for k, v in result.phases.items())
    figures = "".join(
        f"<h3>{html.escape(title)}</h3><img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>"
        for title, data in images.items()
    )
    verdict = profiler_verdict(findings)
    data_share = _percent(data_time, data_time + compute_time)
    document = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Profiler report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}
tr.issue td:nth-child(2){{color:#b00;font-weight:bold}}tr.ok td:nth-child(2){{color:#070}}</style></head>
<body><h1>Profiler report</h1>
<h2>Summary</h2><ul>
<li>{html.escape(PROFILER_REPORT_RULE)}: {html.escape(verdict["RuleEvaluationStatus"])}
({html.escape(verdict["StatusDetails"])})</li>
<li>device: {html.escape(result.device)}, CPUs: {result.cpu_count},
data loader workers: {result.num_workers}</li>
<li>total time: {result.total_seconds:.1f} s; steps recorded: {len(result.steps)};
system samples: {len(result.system)}</li>
<li>data loading {data_time:.1f} s vs compute {compute_time:.1f} s ({data_share:.0f}% data)</li>
{phases}
<li>metrics: {html.escape(json.dumps(_round(summary)))}</li></ul>
<h2>Findings and recommendations</h2>
<p>SageMaker ProfilerReport's single-instance rules with AWS's default thresholds; the first 10% of
the samples are skipped (AWS skips 1000 data points, more than a short job has).</p>
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
