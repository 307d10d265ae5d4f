"""On a finished profiled training job: quality gate, then create or update the endpoint in place.

Gate policy (documented in docs/deploy.md):
- the job must be Completed and report the gate metric (GateMetric of metric_definitions.json,
  test:accuracy) at or above ACCURACY_THRESHOLD in FinalMetricDataList;
- no rule in GATE_BLOCKING_RULES may report IssuesFound, neither in the in-script verdicts
  (rule_verdicts.json in output.tar.gz, which must be present) nor, in builtin debugger mode, in
  DebugRuleEvaluationStatuses. Rules still InProgress there do not block (they can run for
  minutes after the job; the in-script verdicts cover the same rules). Other rules only warn.
The decision and its reasons go to s3://<artifacts>/decisions/<job>.json and to the SNS topic.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline.adapters.notify import Notifier
from pipeline.adapters.s3 import S3Location, S3Store
from pipeline.adapters.sagemaker import SageMakerJobs
from pipeline.adapters.training_code import metric_definitions
from pipeline.images import pytorch_image_uri
from pipeline.observability import logger

if TYPE_CHECKING:  # pydantic is imported by the first call, not at import (cold start)
    from pipeline.settings import Settings

VERDICTS_FILE = "rule_verdicts.json"
MAX_OUTPUT_ARCHIVE_BYTES = 512 * 1024 * 1024
BUSY_ENDPOINT_STATES = (
    "Creating",
    "Updating",
    "SystemUpdating",
    "RollingBack",
    "Deleting",
    "UpdateRollbackFailed",
)


class EndpointBusyError(RuntimeError):
    """The endpoint is mid-change; raising makes Lambda retry the event later (then the DLQ)."""


@dataclass
class GateDecision:
    training_job_name: str
    deploy: bool
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    metric_name: str = ""
    metric_value: float | None = None
    threshold: float = 0.0
    rule_verdicts: dict[str, str] = field(default_factory=dict)
    endpoint_action: str = "none"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def output_archive_location(job: dict[str, Any]) -> S3Location:
    """SM_OUTPUT_DATA_DIR is uploaded as <S3OutputPath>/<job>/output/output.tar.gz."""
    base = job["OutputDataConfig"]["S3OutputPath"].rstrip("/")
    return S3Location.parse(f"{base}/{job['TrainingJobName']}/output/output.tar.gz")


def read_rule_verdicts(store: S3Store, job: dict[str, Any]) -> dict[str, str] | None:
    """RuleConfigurationName -> RuleEvaluationStatus from rule_verdicts.json, None when absent."""
    location = output_archive_location(job)
    if not store.exists(location.bucket, location.key):
        return None
    data = store.get_bytes(location.bucket, location.key, max_bytes=MAX_OUTPUT_ARCHIVE_BYTES)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            for member in archive:
                if member.isfile() and member.name.rsplit("/", 1)[-1] == VERDICTS_FILE:
                    extracted = archive.extractfile(member)
                    document = json.loads(extracted.read()) if extracted else {}
                    return {
                        str(rule["RuleConfigurationName"]): str(rule["RuleEvaluationStatus"])
                        for rule in document.get("rules", [])
                    }
    except (tarfile.TarError, json.JSONDecodeError, KeyError, OSError, EOFError) as error:
        logger.warning("unreadable job output archive", extra={"uri": location.uri, "error": str(error)})
        return None
    return None


def final_metric(job: dict[str, Any], name: str) -> float | None:
    for metric in job.get("FinalMetricDataList", []):
        if metric.get("MetricName") == name:
            return float(metric["Value"])
    return None


def evaluate_gate(job: dict[str, Any], verdicts: dict[str, str] | None, settings: Settings) -> GateDecision:
    metric_name = metric_definitions(settings.training_code_dir)["GateMetric"]
    decision = GateDecision(
        training_job_name=job["TrainingJobName"],
        deploy=True,
        metric_name=metric_name,
        threshold=settings.accuracy_threshold,
    )
    status = job.get("TrainingJobStatus")
    if status != "Completed":
        decision.deploy = False
        decision.reasons.append(f"training job {status}: {job.get('FailureReason', 'no reason given')}")
        return decision

    decision.metric_value = final_metric(job, metric_name)
    if decision.metric_value is None:
        decision.reasons.append(f"metric {metric_name} missing from FinalMetricDataList")
    elif decision.metric_value < settings.accuracy_threshold:
        decision.reasons.append(
            f"{metric_name} {decision.metric_value:.4f} is below the threshold {settings.accuracy_threshold}"
        )

    blocking = set(settings.gate_blocking_rules)
    if verdicts is None:
        decision.reasons.append(
            f"{VERDICTS_FILE} missing from the job output (in-script rules did not report)"
        )
    else:
        for rule, verdict in sorted(verdicts.items()):
            decision.rule_verdicts[rule] = verdict
            _judge_rule(decision, rule, verdict, blocking, "in-script")
    for rule_status in job.get("DebugRuleEvaluationStatuses", []):
        rule, verdict = rule_status["RuleConfigurationName"], rule_status["RuleEvaluationStatus"]
        decision.rule_verdicts[f"builtin:{rule}"] = verdict
        _judge_rule(decision, rule, verdict, blocking, "built-in")
    decision.deploy = not decision.reasons
    return decision


def _judge_rule(decision: GateDecision, rule: str, verdict: str, blocking: set[str], source: str) -> None:
    if verdict == "IssuesFound" and rule in blocking:
        decision.reasons.append(f"{source} rule {rule} found issues")
    elif verdict in ("IssuesFound", "Error"):
        decision.warnings.append(f"{source} rule {rule}: {verdict}")


def model_request(job: dict[str, Any], settings: Settings) -> dict[str, Any]:
    instance_type = settings.endpoint_instance_type if settings.endpoint_mode == "instance" else None
    return {
        "ModelName": job["TrainingJobName"],
        "ExecutionRoleArn": settings.sagemaker_role_arn,
        "PrimaryContainer": {
            "Image": pytorch_image_uri(
                settings.framework_version, settings.aws_region, "inference", instance_type
            ),
            "ModelDataUrl": job["ModelArtifacts"]["S3ModelArtifacts"],
            "Environment": {
                "SAGEMAKER_PROGRAM": "inference.py",
                "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
                "SAGEMAKER_REGION": settings.aws_region,
            },
        },
        "Tags": [{"Key": "training-job", "Value": job["TrainingJobName"]}],
    }


def endpoint_config_name(training_job_name: str) -> str:
    return f"{training_job_name}-cfg"


def endpoint_config_request(job: dict[str, Any], settings: Settings) -> dict[str, Any]:
    variant: dict[str, Any] = {"VariantName": "AllTraffic", "ModelName": job["TrainingJobName"]}
    if settings.endpoint_mode == "serverless":
        variant["ServerlessConfig"] = {
            "MemorySizeInMB": settings.serverless_memory_mb,
            "MaxConcurrency": settings.serverless_max_concurrency,
        }
    else:
        variant.update(
            InstanceType=settings.endpoint_instance_type, InitialInstanceCount=1, InitialVariantWeight=1.0
        )
    return {
        "EndpointConfigName": endpoint_config_name(job["TrainingJobName"]),
        "ProductionVariants": [variant],
    }


def update_endpoint_request(config_name: str, settings: Settings) -> dict[str, Any]:
    request: dict[str, Any] = {"EndpointName": settings.endpoint_name, "EndpointConfigName": config_name}
    if settings.endpoint_mode == "instance":
        # Blue/green: the new fleet takes all traffic at once, the old one is kept while the
        # alarms are watched, and the update rolls back if one of them fires.
        request["DeploymentConfig"] = {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 300},
                "TerminationWaitInSeconds": 600,
                "MaximumExecutionTimeoutInSeconds": 3600,
            },
            "AutoRollbackConfiguration": {
                "Alarms": [{"AlarmName": alarm} for alarm in settings.rollback_alarm_names]
            },
        }
        if not settings.rollback_alarm_names:
            del request["DeploymentConfig"]["AutoRollbackConfiguration"]
    return request


def deploy(job: dict[str, Any], settings: Settings, jobs: SageMakerJobs) -> str:
    """Create model and endpoint config, then create the endpoint or update it in place."""
    jobs.create_model(model_request(job, settings))
    config = endpoint_config_request(job, settings)
    jobs.create_endpoint_config(config)
    config_name = config["EndpointConfigName"]
    endpoint = jobs.describe_endpoint(settings.endpoint_name)
    if endpoint is None:
        jobs.create_endpoint(settings.endpoint_name, config_name)
        return "created"
    if endpoint.get("EndpointConfigName") == config_name:
        return "already-current"
    status = endpoint.get("EndpointStatus", "")
    if status in BUSY_ENDPOINT_STATES:
        raise EndpointBusyError(f"endpoint {settings.endpoint_name} is {status}; retry later")
    jobs.update_endpoint(update_endpoint_request(config_name, settings))
    return "updated"


def on_training_finished(
    training_job_name: str,
    settings: Settings,
    jobs: SageMakerJobs,
    store: S3Store,
    notifier: Notifier,
) -> dict[str, Any]:
    job = jobs.describe_training_job(training_job_name)
    if job.get("TuningJobArn") or not training_job_name.startswith(f"{settings.job_name_prefix}-train-"):
        # A tuning trial (or a job of another pipeline): the EventBridge filter should not let it here.
        logger.info("not a profiled training job, ignored", extra={"training_job_name": training_job_name})
        return {"training_job_name": training_job_name, "action": "ignored"}
    verdicts = read_rule_verdicts(store, job) if job.get("TrainingJobStatus") == "Completed" else None
    decision = evaluate_gate(job, verdicts, settings)
    if decision.deploy:
        decision.endpoint_action = deploy(job, settings, jobs)
    document = {
        **decision.to_dict(),
        "endpoint_name": settings.endpoint_name,
        "endpoint_mode": settings.endpoint_mode,
    }
    store.put_json(settings.artifacts_bucket, f"decisions/{training_job_name}.json", document)
    verb = f"deployed ({decision.endpoint_action})" if decision.deploy else "not deployed"
    notifier.publish(f"Model {verb}: {training_job_name}", document)
    return document
