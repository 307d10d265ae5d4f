"""On a finished profiled training job: quality gate, then offer the model to the endpoint lifecycle.

The gate policy is pipeline.gate (pure, documented in docs/deploy.md); this module gathers its inputs
(DescribeTrainingJob and rule_verdicts.json, streamed out of output.tar.gz) and acts on the decision.
The decision and its reasons go to s3://<artifacts>/decisions/<job>.json and to the SNS topic; the
endpoint's real outcome is added to the same document by pipeline.endpoint_lifecycle when the
endpoint's state-change event shows it.

Errors: S3/SageMaker errors and stream read timeouts propagate (transient: Lambda retries the
event). An output archive that is too large, corrupt, or without a readable rule_verdicts.json is
permanent and becomes a gate reason: the same archive never changes.
"""

from __future__ import annotations

import json
import tarfile
import zlib
from dataclasses import dataclass
from typing import IO, Any, Literal, Required, TypedDict, cast

from dogclf import contract
from pipeline import gate
from pipeline.adapters.notify import Notifier
from pipeline.adapters.s3 import S3Location, S3Store
from pipeline.adapters.sagemaker import SageMakerJobs
from pipeline.adapters.training_layer import metric_definitions
from pipeline.endpoint_lifecycle import EndpointLifecycle
from pipeline.endpoint_requests import endpoint_config_request, model_request
from pipeline.lifecycle_state import Model, epoch_seconds
from pipeline.powertools import logger
from pipeline.settings import DeploySettings, EndpointSettings, GateSettings

# The archive is streamed (never held in memory); this bounds how much of it the gate reads.
MAX_OUTPUT_ARCHIVE_BYTES = 512 * 1024 * 1024
MAX_VERDICTS_BYTES = 4 * 1024 * 1024  # rule_verdicts.json is a few kB


class OutputArchiveError(ValueError):
    """The job's output archive cannot give the gate its verdicts (permanent: a gate reason)."""


@dataclass
class InScriptVerdicts:
    """What output.tar.gz gave the gate: the verdicts, or why there are none."""

    verdicts: list[gate.RuleVerdict] | None
    problem: str | None = None


class _CappedStream:
    """A read-only file object over a streaming body that refuses to go past ``limit`` bytes."""

    def __init__(self, body: Any, limit: int, uri: str) -> None:
        self.body, self.limit, self.uri, self.consumed = body, limit, uri, 0

    def read(self, size: int = -1) -> bytes:
        allowed = self.limit - self.consumed + 1  # one byte over tells "too large" from "exactly"
        chunk: bytes = self.body.read(allowed if size is None or size < 0 else min(size, allowed))
        self.consumed += len(chunk)
        if self.consumed > self.limit:
            raise OutputArchiveError(f"{self.uri} is larger than the {self.limit} bytes the gate reads")
        return chunk


def output_archive_location(job: dict[str, Any]) -> S3Location:
    """SM_OUTPUT_DATA_DIR is uploaded as <S3OutputPath>/<job>/output/output.tar.gz."""
    output = S3Location.parse(job["OutputDataConfig"]["S3OutputPath"])
    key = contract.job_output_key(output.key, job["TrainingJobName"], contract.OUTPUT_ARCHIVE)
    return S3Location(output.bucket, key)


def read_in_script_verdicts(store: S3Store, job: dict[str, Any]) -> InScriptVerdicts:
    """rule_verdicts.json from the job's output.tar.gz, streamed: nothing else is extracted."""
    location = output_archive_location(job)
    opened = store.open_stream(location.bucket, location.key)
    if opened is None:
        return InScriptVerdicts(None, f"{contract.OUTPUT_ARCHIVE} missing: in-script rules did not report")
    length, body = opened
    try:
        if length > MAX_OUTPUT_ARCHIVE_BYTES:
            raise OutputArchiveError(
                f"{location.uri} is {length} bytes, over the {MAX_OUTPUT_ARCHIVE_BYTES} the gate reads"
            )
        document = _verdicts_document(_CappedStream(body, MAX_OUTPUT_ARCHIVE_BYTES, location.uri))
        if document is None:
            return InScriptVerdicts(
                None,
                f"{contract.RULE_VERDICTS_FILE} missing from the job output (in-script rules did not report)",
            )
        return InScriptVerdicts(gate.parse_in_script_verdicts(document))
    except (tarfile.TarError, zlib.error, EOFError, ValueError) as error:
        # Permanent: a corrupt or oversized archive, or a verdicts file of the wrong shape
        # (OutputArchiveError, json's and gate's format errors are ValueErrors). Not caught: botocore's
        # read timeouts and connection errors (OSError/BotoCoreError), which propagate for a retry.
        logger.warning("unreadable job output archive", extra={"uri": location.uri, "error": str(error)})
        return InScriptVerdicts(None, f"{contract.RULE_VERDICTS_FILE} unreadable: {error}"[:500])
    finally:
        body.close()


def _verdicts_document(stream: _CappedStream) -> Any:
    """The parsed rule_verdicts.json of a streamed tar.gz (r|gz: sequential, no seeking), or None."""
    with tarfile.open(fileobj=cast(IO[bytes], stream), mode="r|gz") as archive:  # only .read() is used
        for member in archive:
            if member.isfile() and member.name.removeprefix("./") == contract.RULE_VERDICTS_FILE:
                if member.size > MAX_VERDICTS_BYTES:
                    raise OutputArchiveError(f"{member.name} is {member.size} bytes")
                extracted = archive.extractfile(member)
                return json.loads(extracted.read() if extracted else b"")
    return None


def final_metrics(job: dict[str, Any]) -> dict[str, float]:
    return {
        str(metric["MetricName"]): float(metric["Value"]) for metric in job.get("FinalMetricDataList", [])
    }


def evaluate_gate(
    job: dict[str, Any], in_script: InScriptVerdicts | None, settings: GateSettings
) -> gate.GateDecision:
    """pipeline.gate.decide with this job's inputs (in_script is None for a job that did not complete)."""
    service = gate.parse_service_statuses(
        [*job.get("DebugRuleEvaluationStatuses", []), *job.get("ProfilerRuleEvaluationStatuses", [])]
    )
    return gate.decide(
        training_job_name=job["TrainingJobName"],
        job_status=str(job.get("TrainingJobStatus")),
        failure_reason=job.get("FailureReason"),
        final_metrics=final_metrics(job),
        metric_name=metric_definitions(settings.training_code_dir)["GateMetric"],
        threshold=settings.accuracy_threshold,
        blocking_rules=settings.gate_blocking_rules,
        in_script=in_script.verdicts if in_script else None,
        in_script_problem=in_script.problem if in_script else None,
        service=service,
    )


def deploy(
    job: dict[str, Any], settings: EndpointSettings, jobs: SageMakerJobs, lifecycle: EndpointLifecycle
) -> str:
    """Create the model and endpoint config, then offer the model to the endpoint lifecycle: it is
    deployed now if the endpoint can take it, or recorded as pending (the newest passed model wins)
    and deployed by the endpoint's next state-change event. Returns what was done, never "deployed":
    that is only known when the endpoint's own event says so (pipeline.endpoint_lifecycle)."""
    jobs.create_model(model_request(job, settings))
    config = endpoint_config_request(job, settings)
    jobs.create_endpoint_config(config)
    created = epoch_seconds(job.get("CreationTime"))
    return lifecycle.offer(Model(job["TrainingJobName"], config["EndpointConfigName"], created))


def settled_decision(store: S3Store, bucket: str, key: str) -> dict[str, Any] | None:
    """The decision document, if it already holds a final endpoint outcome (not "pending")."""
    if not store.exists(bucket, key):
        return None
    document = dict(store.get_json(bucket, key))
    status = (document.get("endpoint_outcome") or {}).get("status")
    return document if status not in (None, "pending") else None


class TrainingFinishedResult(TypedDict, total=False):
    """The gate's decision document: decisions/<job>.json, the topic's message and the function's
    return value (gate.GateDecision's fields plus the endpoint's); or, for a tuning trial, only
    ``action: "ignored"`` (nothing recorded)."""

    training_job_name: Required[str]
    action: Literal["ignored"]
    deploy: bool
    reasons: list[str]
    warnings: list[str]
    metric_name: str
    metric_value: float | None
    threshold: float
    blocking_rules: list[str]
    rule_verdicts: dict[str, str]
    rules: list[dict[str, Any]]
    profiler_findings: list[str]
    endpoint_action: str  # what the lifecycle did with the model (never "deployed")
    endpoint_outcome: dict[str, Any]  # {"status": "pending" | "superseded" | pipeline.lifecycle_state's}
    endpoint_name: str
    endpoint_mode: str
    debugger_mode: str


def on_training_finished(
    training_job_name: str,
    settings: DeploySettings,
    jobs: SageMakerJobs,
    store: S3Store,
    notifier: Notifier,
    lifecycle: EndpointLifecycle,
) -> TrainingFinishedResult:
    """Gate a finished profiled training job and offer a passed model to the endpoint lifecycle. The
    handler passes only this pipeline's training jobs (contract.is_pipeline_training_job)."""
    job = jobs.describe_training_job(training_job_name)
    if job.get("TuningJobArn"):
        logger.info("a tuning trial, ignored", extra={"training_job_name": training_job_name})
        return {"training_job_name": training_job_name, "action": "ignored"}
    in_script = read_in_script_verdicts(store, job) if job.get("TrainingJobStatus") == "Completed" else None
    decision = evaluate_gate(job, in_script, settings)
    document = cast(
        TrainingFinishedResult,
        {
            **decision.to_dict(),
            "endpoint_name": settings.endpoint_name,
            "endpoint_mode": settings.endpoint_mode,
            "debugger_mode": settings.debugger_mode,
        },
    )
    key = f"decisions/{training_job_name}.json"
    settled = settled_decision(store, settings.artifacts_bucket, key) if decision.deploy else None
    if settled is not None:
        # A retry or redrive of an attempt that died after handing the model over: the endpoint's
        # own event has recorded the real outcome since. It is final, and the model is not offered
        # again (found by the fault-injection soak: the retry overwrote "failed" with "superseded").
        document["endpoint_outcome"] = settled["endpoint_outcome"]
        document["endpoint_action"] = settled.get("endpoint_action", "handed over by an earlier attempt")
    elif decision.deploy:
        # Until the endpoint's state event records the real outcome, the decision says "requested".
        document["endpoint_outcome"] = {"status": "pending", "message": "deploy requested"}
        store.put_json(settings.artifacts_bucket, f"decisions/{training_job_name}.json", document)
        document["endpoint_action"] = deploy(job, settings, jobs, lifecycle)
        if document["endpoint_action"].startswith("superseded"):
            document["endpoint_outcome"] = {"status": "superseded", "message": document["endpoint_action"]}
        # Re-read: a fast endpoint event may already have recorded the outcome in the meantime.
        current = store.get_json(settings.artifacts_bucket, f"decisions/{training_job_name}.json")
        if current.get("endpoint_outcome", {}).get("status") not in (None, "pending"):
            document["endpoint_outcome"] = current["endpoint_outcome"]
    store.put_json(settings.artifacts_bucket, f"decisions/{training_job_name}.json", document)
    # Short: SNS subjects stop at 100 characters (the full action is in the message).
    verb = (
        f"passed the gate ({document['endpoint_action'].split(' (')[0]})"
        if decision.deploy
        else "not deployed"
    )
    notifier.publish(f"Model {verb}: {training_job_name}", dict(document))
    return document
