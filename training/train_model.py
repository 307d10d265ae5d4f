"""Profiled training entry point: the same training core as hpo.py plus SageMaker Debugger.

- With the features channel (the features job's archive, which the pipeline passes next to the image
  channels) and no augmentation, the head trains from the saved features and the full model runs
  only at the training steps at which the hook saves the backbone's activations (relu_input, the first
  MIN_RULE_STEPS): the backbone once per image per pipeline (dogclf/profiled_features.py).
- Otherwise (no features channel, --augment true, a distributed job) the full model runs forward at
  every step, as before: no in-job feature cache, whatever --feature_cache says.
- The forward uses all the instance's CPUs (dogclf/backbone_speed.py): the job runs alone on it.
- Debugger hook (dogclf/debugger/hook.py) from the job's DebugHookConfig when present, else from the
  same config the Lambda sends, sized from this dataset; registered on the full model and the loss.
- When training ends, five built-in-style rules (dogclf/debugger/rules.py) run on the saved trial.
- Profiling (dogclf/profiling/): profiler-report.html, loss.png and a ProfilerReport verdict.
- Outputs in SM_OUTPUT_DATA_DIR (names in dogclf/contract.py): rule_verdicts.json (the five rules, then
  ProfilerReport), metrics.json (with rule_verdicts and profiler_findings), profiler-report.html,
  loss.png. Rank 0 alone writes these (and the model) in a distributed job.
"""

# ruff: noqa: E402
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

# Kineto logs a harmless "gpuGetDeviceCount failed" ERROR line on CPU-only hosts; keep logs clean.
os.environ.setdefault("KINETO_LOG_LEVEL", "5")
# Before smdebug is imported (it reads the profiler config at import): see framework_guard.py.
from dogclf.profiling.framework_guard import switch_off_framework_profiling

switch_off_framework_profiling()  # the imports below come after it on purpose (ruff: E402 off here)

from smdebug.trials import create_trial

from dogclf import backbone_speed, engine, flags, loop, profiled_features
from dogclf.contract import LOSS_PLOT_FILE, METRICS_FILE, PROFILER_REPORT_FILE, RULE_VERDICTS_FILE
from dogclf.debugger import rules
from dogclf.debugger.hook import DebuggerCallbacks, debugger_config_path
from dogclf.failure import run_main
from dogclf.profiling import report
from dogclf.profiling.sampler import ProfileResult, ProfilingCallbacks


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE") or max(1, len(json.loads(os.environ.get("SM_HOSTS", "[]")))))


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0 and _host_rank() == 0


def _host_rank() -> int:
    hosts = sorted(json.loads(os.environ.get("SM_HOSTS", "[]")))
    current = os.environ.get("SM_CURRENT_HOST")
    if "WORLD_SIZE" in os.environ or len(hosts) <= 1 or current not in hosts:
        return 0
    return hosts.index(current)


def get_args_parser():
    parser = flags.get_args_parser("Train the dog-breed head with Debugger rules and a profiler report.")
    parser.add_argument("--profile_steps", type=int, default=5, help="steps in the torch.profiler window")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = flags.parse_args(get_args_parser(), argv)
    if args.feature_cache:
        print("feature cache off: the profiled job runs the full model where the hook needs it", flush=True)
        args.feature_cache = False
    backbone_speed.use_instance_threads()
    features_location = profiled_features.wanted(args, _world_size(), lambda line: print(line, flush=True))
    output_dir = Path(args.output_data_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    profiler = ProfilingCallbacks(active=args.profile_steps, num_workers=args.num_workers)
    debugger: DebuggerCallbacks | None = None
    callbacks: loop.Callbacks = profiler
    # With a SageMaker DebugHookConfig every rank builds its hook (smdebug picks the saving worker);
    # the in-script hook is rank 0's alone (its folder must not exist yet).
    if debugger_config_path() is not None or _is_main_process():
        debugger = DebuggerCallbacks(output_dir, world_size=_world_size(), inner=profiler)
        callbacks = debugger
    loaders_factory = None
    if features_location is not None:
        hook = debugger  # the hook config is written once the dataset is known (on_dataset)
        loaders_factory = profiled_features.LoadersFromFeatures(
            features_location, lambda: hook.config_path if hook is not None else None
        )
    profiler.start()
    result = engine.main(
        args, entry_point="train_model.py", callbacks=callbacks, loaders_factory=loaders_factory
    )
    profile = profiler.finish(result["device"])
    if debugger is not None:
        debugger.close()
    if result["rank"] != 0:
        return 0
    write_reports(output_dir, result, profile, _evaluate_rules(debugger))
    return 0


def _evaluate_rules(debugger: DebuggerCallbacks | None) -> list[rules.Verdict]:
    if debugger is None or debugger.hook is None:
        return rules.error_verdicts("no Debugger hook on rank 0")
    try:
        trial = create_trial(debugger.hook.out_dir)
    except Exception as error:  # a missing/empty trial must not fail a finished training job
        return rules.error_verdicts(f"cannot open trial: {error}")
    return rules.evaluate_all(trial)


def write_reports(
    output_dir: Path, result: dict[str, Any], profile: ProfileResult, verdicts: list[rules.Verdict]
) -> None:
    """rule_verdicts.json, loss.png, profiler-report.html; verdicts and findings into metrics.json."""
    for verdict in verdicts:
        print(verdict.log_line(), flush=True)
    report.plot_losses(result["history"], output_dir / LOSS_PLOT_FILE)
    findings = report.write_report(
        profile, result["history"], result["final"], output_dir / PROFILER_REPORT_FILE
    )
    for finding in findings:
        print(f"profiler {finding.rule}: {'issue' if finding.triggered else 'ok'} - {finding.detail}")
    profiler_verdict = report.profiler_verdict(findings)
    profiler_verdict["StepsEvaluated"] = sum(1 for step in profile.steps if step.phase == "train")
    print(
        f"rule {profiler_verdict['RuleConfigurationName']}: {profiler_verdict['RuleEvaluationStatus']} - "
        f"{profiler_verdict['StatusDetails']} ({len(profile.system)} system samples)",
        flush=True,
    )
    rule_entries = [*json.loads(rules.verdicts_json(verdicts))["rules"], profiler_verdict]
    (output_dir / RULE_VERDICTS_FILE).write_text(json.dumps({"rules": rule_entries}, indent=2))
    metrics_path = output_dir / METRICS_FILE
    metrics = json.loads(metrics_path.read_text())
    metrics["rule_verdicts"] = rule_entries
    metrics["profiler_findings"] = report.findings_json(findings)
    metrics["profiler_report"] = profiler_verdict
    metrics_path.write_text(json.dumps(metrics, indent=2))
    print(f"wrote {RULE_VERDICTS_FILE}, {PROFILER_REPORT_FILE}, {LOSS_PLOT_FILE} to {output_dir}", flush=True)


if __name__ == "__main__":
    sys.exit(run_main(main))
