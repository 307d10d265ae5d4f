"""A training job's files, as the platform writes and reads them around the toolkit.

The job's ``SAGEMAKER_BASE_DIR`` is laid out like ``/opt/ml``: ``input/config/*.json`` written before
the toolkit starts (hyperparameters, resource and input data config, the Debugger and profiler
configs), and, after the script, ``output/failure`` (the FailureReason), ``output/data`` (the in-script
rule verdicts that stand in for AWS's rule containers) and the artifacts' tarballs. Also the toolkit's
contract helpers: S3 URIs, JSON-encoded hyperparameters, metric scraping from the log.
"""

from __future__ import annotations

import json
import logging
import re
import tarfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from dogclf import contract

logger = logging.getLogger("localcloud.sagemaker.runners.training")

FAILURE_REASON_LIMIT = 1024  # DescribeTrainingJob's FailureReason max length
LOG_TAIL_LINES = 20
TOOLKIT_FAILURE_MARK = "sagemaker-training-toolkit ERROR    Reporting training FAILURE"
TOOLKIT_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ sagemaker-training-toolkit ")


class JobSetupError(Exception):
    """The platform could not prepare the job (bad channel, missing source dir...): job Failed."""


def parse_s3_uri(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise JobSetupError(f"not an S3 URI: {uri!r}")
    return parsed.netloc, parsed.path.lstrip("/")


def decode_hyperparameter(value: str) -> Any:
    """Decode like the toolkit does: JSON if it parses, the raw string otherwise."""
    try:
        return json.loads(value)
    except (json.JSONDecodeError, TypeError):
        return value


class MetricScraper:
    """Applies a job's MetricDefinitions to each log line; the last value of each metric wins."""

    def __init__(self, definitions: list[dict[str, str]]) -> None:
        self._patterns = [(d["Name"], re.compile(d["Regex"])) for d in definitions]
        self.latest: dict[str, tuple[float, float]] = {}  # name -> (value, epoch seconds)

    def feed(self, line: str) -> None:
        for name, pattern in self._patterns:
            match = pattern.search(line)
            if not match:
                continue
            text = match.group(1) if pattern.groups else match.group(0)
            try:
                value = float(text)
            except (TypeError, ValueError):
                continue  # SageMaker ignores matches that are not numbers
            self.latest[name] = (value, time.time())

    def final_metric_data_list(self) -> list[dict[str, Any]]:
        return [
            {"MetricName": name, "Value": value, "Timestamp": stamp}
            for name, _ in self._patterns
            if name in self.latest
            for value, stamp in [self.latest[name]]
        ]


def last_exception_line(lines: list[str]) -> str | None:
    """The script's last words before the toolkit reported failure: the line ending its last
    traceback ('SomeError: message'), else its last output line (e.g. a SystemExit message)."""
    for index, line in enumerate(lines):
        if TOOLKIT_FAILURE_MARK in line:
            lines = lines[:index]
            break
    starts = [
        index for index, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")
    ]
    if starts:
        for line in lines[starts[-1] + 1 :]:
            if line and not line.startswith((" ", "\t")):
                return line.strip()
    script_lines = [line for line in lines if line.strip() and not TOOLKIT_LOG_LINE.match(line)]
    return script_lines[-1].strip() if script_lines else None


def relative_key(key: str, prefix: str) -> str:
    """Where an object lands in the channel dir: its key relative to the prefix's folder."""
    if prefix.endswith("/") or not prefix:
        return key[len(prefix) :]
    if key == prefix:
        return key.rsplit("/", 1)[-1]
    if key.startswith(prefix + "/"):
        return key[len(prefix) + 1 :]
    # "data/train" also matches "data/train2/x": keep the part after the prefix's parent folder.
    parent = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
    return key[len(parent) :]


def tar_directory(source: Path, archive: Path) -> None:
    with tarfile.open(archive, "w:gz") as tar:
        if source.is_dir():
            for path in sorted(source.iterdir()):
                tar.add(path, arcname=path.name)


def write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2))


def local_path(base_dir: Path, requested: str | None, default: str) -> Path:
    """Map a container path under /opt/ml (or none) into this job's base dir."""
    if requested and requested.startswith("/opt/ml/"):
        return base_dir / requested.removeprefix("/opt/ml/")
    return base_dir / default


def write_config_files(desc: dict[str, Any], base_dir: Path) -> None:
    """input/config/*.json as the platform writes them before the toolkit starts."""
    config = base_dir / "input" / "config"
    resources = desc.get("ResourceConfig", {})
    instance_type = resources.get("InstanceType", "local")
    write_json(config / "hyperparameters.json", desc.get("HyperParameters") or {})
    write_json(
        config / "resourceconfig.json",
        {
            "current_host": "algo-1",
            "current_instance_type": instance_type,
            "current_group_name": "homogeneousCluster",
            "hosts": ["algo-1"],
            "instance_groups": [
                {
                    "instance_group_name": "homogeneousCluster",
                    "instance_type": instance_type,
                    "hosts": ["algo-1"],
                }
            ],
            "network_interface_name": "eth0",
        },
    )
    write_json(
        config / "inputdataconfig.json",
        {
            channel["ChannelName"]: {
                "TrainingInputMode": channel.get("InputMode")
                or desc["AlgorithmSpecification"].get("TrainingInputMode", "File"),
                "S3DistributionType": channel.get("DataSource", {})
                .get("S3DataSource", {})
                .get("S3DistributionType", "FullyReplicated"),
                "RecordWrapperType": channel.get("RecordWrapperType", "None"),
            }
            for channel in desc.get("InputDataConfig") or []
        },
    )
    hook = desc.get("DebugHookConfig")
    if hook:
        # smdebug reads SMDEBUG_CONFIG_FILE_PATH (default /opt/ml/input/config/debughookconfig.json);
        # tensors go to LocalPath, which we keep inside this job's base dir.
        write_json(
            config / "debughookconfig.json",
            {
                "S3OutputPath": hook.get("S3OutputPath"),
                "LocalPath": str(local_path(base_dir, hook.get("LocalPath"), "output/tensors")),
                "HookParameters": hook.get("HookParameters") or {},
                "CollectionConfigurations": hook.get("CollectionConfigurations") or [],
            },
        )
    profiler = desc.get("ProfilerConfig")
    if profiler and not profiler.get("DisableProfiler"):
        parameters = dict(profiler.get("ProfilingParameters") or {})
        parameters.setdefault("ProfilerEnabled", True)
        parameters["LocalPath"] = str(base_dir / "output" / "profiler")
        if "ProfilingIntervalInMilliseconds" in profiler:
            parameters.setdefault(
                "ProfilingIntervalInMilliseconds", profiler["ProfilingIntervalInMilliseconds"]
            )
        write_json(config / "profilerconfig.json", {"ProfilingParameters": parameters})


def rule_statuses(
    desc: dict[str, Any], base_dir: Path, job_name: str, stopped: bool, succeeded: bool
) -> dict[str, list[dict[str, Any]]]:
    """DebugRuleEvaluationStatuses / ProfilerRuleEvaluationStatuses for the rules the request
    configured, and only those, as AWS reports them: an in-script job (no rule configurations)
    gets none, whatever the script wrote.

    Local stand-in for AWS's rule containers (builtin mode), which do not run here: a configured
    rule's status is the verdict the training script wrote for the same rule in rule_verdicts.json,
    and StatusDetails says so. A configured rule without such a verdict is Error (Stopped for a
    stopped job), never a made-up pass. The gate counts one verdict per rule (pipeline.gate).
    """
    configured = {
        status_key: desc.get(config_key) or []
        for config_key, status_key in (
            ("DebugRuleConfigurations", "DebugRuleEvaluationStatuses"),
            ("ProfilerRuleConfigurations", "ProfilerRuleEvaluationStatuses"),
        )
    }
    if not any(configured.values()):
        return {}
    verdicts = script_verdicts(base_dir, job_name)
    result: dict[str, list[dict[str, Any]]] = {}
    for status_key, rules in configured.items():
        statuses = []
        for rule in rules:
            name = rule["RuleConfigurationName"]
            verdict = verdicts.get(name)
            if verdict:
                status = str(verdict.get("RuleEvaluationStatus", contract.ERROR))
                details = (
                    "Local emulator: no rule container runs here; this is the training script's "
                    f"in-script verdict for the same rule: {verdict.get('StatusDetails', '')}"
                )
                findings = ", ".join(map(str, verdict.get(contract.PROFILER_FINDINGS_KEY) or []))
                if findings and findings not in details:
                    details += f" (triggered: {findings})"
            elif stopped:
                status, details = contract.STOPPED, "Training job stopped before the rule reported."
            else:
                status = contract.ERROR
                details = "The training script reported no verdict for this rule (local emulator)."
                if not succeeded:
                    details = "Training failed before the rule reported a verdict."
            statuses.append(
                {
                    "RuleConfigurationName": name,
                    "RuleEvaluationStatus": status,
                    "StatusDetails": details[:1024],
                    "LastModifiedTime": time.time(),
                }
            )
        if statuses:
            result[status_key] = statuses
    return result


def script_verdicts(base_dir: Path, job_name: str) -> dict[str, dict[str, Any]]:
    """rule_verdicts.json of SM_OUTPUT_DATA_DIR by rule name ({} when absent or unreadable)."""
    verdict_file = base_dir / "output" / "data" / contract.RULE_VERDICTS_FILE
    if not verdict_file.exists():
        return {}
    try:
        rules = json.loads(verdict_file.read_text())["rules"]
        return {rule["RuleConfigurationName"]: rule for rule in rules}
    except (ValueError, KeyError, TypeError) as error:
        logger.warning("job %s: unreadable %s: %s", job_name, contract.RULE_VERDICTS_FILE, error)
        return {}


def failure_reason(base_dir: Path, log_tail: list[str]) -> str:
    """FailureReason of a job whose script failed: the toolkit's output/failure, with the script's
    last exception line as its ErrorMessage."""
    failure_file = base_dir / "output" / "failure"
    text = failure_file.read_text(errors="replace").strip() if failure_file.exists() else ""
    error_line = last_exception_line(log_tail)
    if not text:
        text = error_line or "\n".join(log_tail[-LOG_TAIL_LINES:])
    elif error_line:
        # The toolkit runs the script without capturing stderr, so its ErrorMessage is empty;
        # the framework containers fill it from stderr: do the same from the log.
        text = text.replace('ErrorMessage ""', f"ErrorMessage {json.dumps(error_line)}")
        if error_line not in text:
            text = f"{text}\n{error_line}"
    reason = f"AlgorithmError: {text}" if not text.startswith("ClientError") else text
    if len(reason) > FAILURE_REASON_LIMIT:
        reason = reason[: FAILURE_REASON_LIMIT - 3] + "..."
    return reason
