"""The soak run's audit (bench/bench_soak.py): what the pipeline left behind, as counts and problems.

Generic on purpose: datasets by their ingest report, jobs by name kind (``<prefix>-<kind>-<hash>``,
trials excluded) and input channel (a tuning job whose trials read features: its ``dataset_manifest``
hyperparameter), decisions by ``decisions/<job>.json``, images by their result.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from dogclf import contract
from localcloud.cloud import LocalCloud

# The endpoint lifecycle's outcome notifications (pipeline.endpoint_lifecycle.record_outcome).
OUTCOME_SUBJECTS = {
    "Model InService": "in-service",
    "Model rolled back": "rolled-back",
    "Model deploy failed": "failed",
}


class PipelineState:
    """What the pipeline left in the local cloud, read through its clients: the audit's input, and the
    readers the soak run polls (bench_soak.Soak extends this, so the audit never imports the run)."""

    def __init__(self, cloud: LocalCloud) -> None:
        self.cloud = cloud
        self.outputs = cloud.outputs()
        self.s3, self.sm, self.sqs = cloud.client("s3"), cloud.client("sagemaker"), cloud.client("sqs")
        assert cloud.runner is not None
        envs = [spec.environment for spec in cloud.runner.functions.values()]
        self.prefix = next((env["JOB_NAME_PREFIX"] for env in envs if "JOB_NAME_PREFIX" in env), "dogclf")
        self.input_prefix = ""

    def keys(self, bucket: str, prefix: str) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def get_json(self, bucket: str, key: str) -> Any:
        return json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    def endpoint_status(self) -> str | None:
        endpoints = self.sm.list_endpoints(NameContains=self.outputs["EndpointName"])["Endpoints"]
        found = [e for e in endpoints if e["EndpointName"] == self.outputs["EndpointName"]]
        return found[0]["EndpointStatus"] if found else None

    def jobs(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(tuning jobs, training jobs), described."""
        tuning = [
            self.sm.describe_hyper_parameter_tuning_job(
                HyperParameterTuningJobName=s["HyperParameterTuningJobName"]
            )
            for page in self.sm.get_paginator("list_hyper_parameter_tuning_jobs").paginate()
            for s in page["HyperParameterTuningJobSummaries"]
        ]
        training = [
            self.sm.describe_training_job(TrainingJobName=s["TrainingJobName"])
            for page in self.sm.get_paginator("list_training_jobs").paginate()
            for s in page["TrainingJobSummaries"]
        ]
        return tuning, training

    def failure_queue(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.outputs["FailedEventsQueueUrl"],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())


def dataset_of(channels: list[dict[str, Any]]) -> str | None:
    for channel in channels:
        uri = channel.get("DataSource", {}).get("S3DataSource", {}).get("S3Uri", "")
        if "/datasets/" in uri:
            return str(uri.split("/datasets/", 1)[1].split("/", 1)[0])
    return None


def dataset_of_tuning(job: dict[str, Any]) -> str | None:
    """A tuning job's dataset: its image channels, or (trials reading the features channel) the
    ``dataset_manifest`` static hyperparameter the pipeline sets (s3://.../datasets/<id>/manifest.json)."""
    definition = job["TrainingJobDefinition"]
    found = dataset_of(definition.get("InputDataConfig", []))
    if found:
        return found
    manifest = json.loads(definition.get("StaticHyperParameters", {}).get("dataset_manifest", '""'))
    if isinstance(manifest, str) and "/datasets/" in manifest:
        return manifest.split("/datasets/", 1)[1].split("/", 1)[0]
    return None


def audit(
    soak: PipelineState, uploads: dict[str, str], image_keys: list[str], bad_images: set[str]
) -> dict[str, Any]:
    """Counts of what the pipeline left behind; every problem is listed with what it concerns."""
    problems: dict[str, list[str]] = {"lost": [], "duplicated": [], "stuck": []}
    outputs = soak.outputs
    datasets_bucket, artifacts = outputs["DatasetBucketName"], outputs["ArtifactsBucketName"]
    reports = [
        soak.get_json(datasets_bucket, k)
        for k in soak.keys(datasets_bucket, "datasets/")
        if k.endswith("/report.json")
    ]
    by_upload: dict[str, list[dict[str, Any]]] = {}
    for report in reports:
        by_upload.setdefault(report["source"]["key"], []).append(report)
    tuning, training = soak.jobs()
    tuning_by: dict[str, list[dict[str, Any]]] = {}
    for job in tuning:
        tuning_by.setdefault(dataset_of_tuning(job) or "?", []).append(job)
        if job["HyperParameterTuningJobStatus"] in ("InProgress", "Stopping"):
            problems["stuck"].append(
                f"tuning job {job['HyperParameterTuningJobName']} {job['HyperParameterTuningJobStatus']}"
            )
    pipeline_jobs: dict[str, dict[str, list[dict[str, Any]]]] = {}  # dataset -> kind infix -> jobs
    for job in training:
        if job["TrainingJobStatus"] in ("InProgress", "Stopping"):
            problems["stuck"].append(f"training job {job['TrainingJobName']} {job['TrainingJobStatus']}")
        if job.get("TuningJobArn"):
            continue  # a trial: counted by its tuning job
        kind = job["TrainingJobName"].removeprefix(f"{soak.prefix}-").rsplit("-", 1)[0]
        dataset = dataset_of(job.get("InputDataConfig", [])) or "?"
        pipeline_jobs.setdefault(dataset, {}).setdefault(kind, []).append(job)
    # What the endpoint's own events said about each model: the decision must say the same.
    announced: dict[str, str] = {}
    for note in soak.cloud.read_notifications():
        head, _, job_name = note["subject"].partition(": ")
        if head in OUTCOME_SUBJECTS:
            announced[job_name] = OUTCOME_SUBJECTS[head]
    decisions: Counter[str] = Counter()
    for upload_key, name in uploads.items():
        found = by_upload.get(upload_key, [])
        if len(found) != 1:
            problems["lost" if not found else "duplicated"].append(f"{name}: {len(found)} ingest reports")
            continue
        report = found[0]
        if report.get("status") == "rejected":
            decisions["rejected"] += 1
            continue
        dataset = report["dataset_id"]
        kinds = pipeline_jobs.get(dataset, {})
        for kind, jobs in kinds.items():
            if len(jobs) > 1:
                problems["duplicated"].append(f"{name}: {len(jobs)} '{kind}' training jobs")
        failed = [
            j for jobs in kinds.values() for j in jobs if j["TrainingJobStatus"] in ("Failed", "Stopped")
        ]
        tunings = tuning_by.get(dataset, [])
        features = kinds.get(contract.FEATURES_INFIX.strip("-"), [])
        if not tunings and features and all(j in failed for j in features):
            decisions["failed (job)"] += 1  # the features job failed: no tuning job, by design
            continue
        if len(tunings) != 1:
            problems["lost" if not tunings else "duplicated"].append(f"{name}: {len(tunings)} tuning jobs")
            continue
        profiled = kinds.get(contract.TRAINING_INFIX.strip("-"), [])
        if tunings[0]["HyperParameterTuningJobStatus"] != "Completed" or (failed and not profiled):
            decisions["failed (job)"] += 1
            continue
        if not profiled:
            problems["lost"].append(f"{name}: tuning Completed, no profiled training job")
            continue
        key = f"decisions/{profiled[0]['TrainingJobName']}.json"
        if key not in soak.keys(artifacts, key):
            problems["lost"].append(f"{name}: no {key}")
            continue
        decision = soak.get_json(artifacts, key)
        outcome = (decision.get("endpoint_outcome") or {}).get("status")
        if not decision.get("deploy"):
            decisions[
                "failed (job)" if profiled[0]["TrainingJobStatus"] != "Completed" else "model rejected"
            ] += 1
        elif outcome in (None, "pending"):
            problems["stuck"].append(f"{name}: {key} endpoint outcome still {outcome or 'missing'}")
        elif announced.get(profiled[0]["TrainingJobName"], outcome) != outcome:
            said = announced[profiled[0]["TrainingJobName"]]
            problems["lost"].append(f"{name}: {key} says {outcome}, the endpoint's outcome was {said}")
        else:
            decisions[f"deploy {outcome}"] += 1
    results: Counter[str] = Counter()
    inference = outputs["InferenceBucketName"]
    result_keys = set(soak.keys(inference, "results/"))
    for key in image_keys:
        result_key = f"results/{key.removeprefix(soak.input_prefix)}.json"
        if result_key not in result_keys:
            problems["lost"].append(f"image {key}: no result")
            continue
        status = soak.get_json(inference, result_key).get("status")
        expected = "failed" if key in bad_images else "ok"
        results[f"{status} ({'bad' if key in bad_images else 'good'} image)"] += 1
        if status != expected:
            problems["lost"].append(f"image {key}: result {status}, expected {expected}")
    table = soak.cloud.client("dynamodb").scan(TableName=outputs["IdempotencyTableName"]).get("Items", [])
    for item in table:
        if item.get("status", {}).get("S") == "INPROGRESS":
            problems["stuck"].append(f"idempotency record {item.get('id', {}).get('S')} in progress")
        if "state" in item:  # the endpoint lifecycle's item: nothing may still wait to deploy
            state = json.loads(item["state"]["S"])
            waiting = {k: state[k] for k in ("pending", "inflight") if state.get(k)}
            if waiting:
                problems["stuck"].append(f"endpoint lifecycle still has {waiting}")
    status = soak.endpoint_status()
    if status != "InService":
        problems["stuck"].append(f"endpoint {outputs['EndpointName']} is {status}")
    left = soak.failure_queue()
    if left:
        problems["lost"].append(f"{left} message(s) left in the failure queue after the redrive")
    return {"decisions": dict(decisions), "results": dict(results), "problems": problems}
