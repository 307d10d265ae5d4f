"""Profiled training entry point: the same training core as hpo.py plus SageMaker Debugger.

- Debugger hook from the job's DebugHookConfig when present, else an in-script hook (debugger.py);
  registered on the trained module and the loss, TRAIN/EVAL modes set by the core.
- When training ends, five built-in-style rules (rules.py) run on the saved trial; verdicts go to
  ``SM_OUTPUT_DATA_DIR/rule_verdicts.json`` and the log.
- Profiling (profiling.py, report.py): ``SM_OUTPUT_DATA_DIR/profiler-report.html`` and ``loss.png``.
Rank 0 alone writes these (and the model) in a distributed job.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # dogclf/ sits next to this script
# Kineto logs a harmless "gpuGetDeviceCount failed" ERROR line on CPU-only hosts; keep logs clean.
os.environ.setdefault("KINETO_LOG_LEVEL", "5")

from smdebug.trials import create_trial

from dogclf import debugger, engine, report, rules
from dogclf.cli import run_main
from dogclf.profiling import ProfilingCallbacks


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0 and _host_rank() == 0


def _host_rank() -> int:
    hosts = sorted(json.loads(os.environ.get("SM_HOSTS", "[]")))
    current = os.environ.get("SM_CURRENT_HOST")
    if "WORLD_SIZE" in os.environ or len(hosts) <= 1 or current not in hosts:
        return 0
    return hosts.index(current)


def get_args_parser():
    parser = engine.get_args_parser("Train the dog-breed head with Debugger rules and a profiler report.")
    parser.add_argument("--profile_steps", type=int, default=5, help="steps in the torch.profiler window")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = engine.parse_args(get_args_parser(), argv)
    output_dir = Path(args.output_data_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    profiler = ProfilingCallbacks(active=args.profile_steps)
    hook = None
    callbacks: engine.Callbacks = profiler
    # With a SageMaker DebugHookConfig every rank builds its hook (smdebug picks the saving worker);
    # the in-script hook is rank 0's alone (its folder must not exist yet).
    if debugger.debugger_config_path() is not None or _is_main_process():
        hook, source = debugger.create_hook(output_dir / "tensors")
        print(f"Debugger hook from {source}, tensors in {hook.out_dir}", flush=True)
        callbacks = debugger.DebuggerCallbacks(hook, inner=profiler)
    profiler.start()
    result = engine.run(args, entry_point="train_model.py", callbacks=callbacks)
    profile = profiler.finish(result["device"])
    if hook is not None:
        hook.close()
    if result["rank"] != 0:
        return 0

    verdicts = _evaluate_rules(hook)
    (output_dir / "rule_verdicts.json").write_text(rules.verdicts_json(verdicts))
    for verdict in verdicts:
        step = f" at step {verdict.Step}" if verdict.Step is not None else ""
        print(
            f"rule {verdict.RuleConfigurationName}: {verdict.RuleEvaluationStatus}{step} "
            f"- {verdict.StatusDetails}"
        )

    report.plot_losses(result["history"], output_dir / "loss.png")
    findings = report.write_report(
        profile, result["history"], result["final"], output_dir / "profiler-report.html"
    )
    for finding in findings:
        print(f"profiler {finding.rule}: {'issue' if finding.triggered else 'ok'} - {finding.detail}")
    metrics_path = output_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["rule_verdicts"] = json.loads(rules.verdicts_json(verdicts))["rules"]
    metrics["profiler_findings"] = report.findings_json(findings)
    metrics_path.write_text(json.dumps(metrics, indent=2))
    print(f"wrote rule_verdicts.json, profiler-report.html, loss.png to {output_dir}", flush=True)
    return 0


def _evaluate_rules(hook) -> list[rules.Verdict]:
    if hook is None:
        return [rules.Verdict(name, rules.ERROR, "no Debugger hook on rank 0", None) for name in rules.RULES]
    try:
        trial = create_trial(hook.out_dir)
    except Exception as error:  # a missing/empty trial must not fail a finished training job
        return [rules.Verdict(name, rules.ERROR, f"cannot open trial: {error}", None) for name in rules.RULES]
    return rules.evaluate_all(trial)


if __name__ == "__main__":
    sys.exit(run_main(main))
