"""Dataset-ready handler with AugmentTrials on (tuning starts on the manifest event, trials read the
images) against moto: request shape, SDK-style hyperparameters, code upload, duplicates. The default
path (the features stage first) is in test_features_stage.py."""

from __future__ import annotations

import io
import json
import tarfile

import boto3
import pytest
from fn_support import ENV, REGION, TRAINING_DIR, s3_event

from pipeline.source_dir import pack
from pipeline.tuning_stage import tuning_job_name


@pytest.fixture
def dataset_ready(aws, monkeypatch):
    """The handler module, imported once the test environment is set (it reads settings on import)."""
    monkeypatch.setenv("AUGMENT_TRIALS", "true")
    from pipeline.handlers import dataset_ready

    return dataset_ready


BUCKET = ENV["DATASET_BUCKET"]
DATASET = "dogimages-0123456789ab"
MANIFEST_KEY = f"datasets/{DATASET}/manifest.json"


def put_manifest(aws) -> None:
    manifest = {
        "dataset_id": DATASET,
        "bucket": BUCKET,
        "prefix": f"datasets/{DATASET}/",
        "channels": {
            split: f"s3://{BUCKET}/datasets/{DATASET}/{split}/" for split in ("train", "valid", "test")
        },
        "classes": ["Affenpinscher", "Akita"],
        "images": {"train": 8, "valid": 4, "test": 4},
    }
    aws.s3.put_object(Bucket=BUCKET, Key=MANIFEST_KEY, Body=json.dumps(manifest).encode())


def test_manifest_starts_one_tuning_job(dataset_ready, aws, lambda_context) -> None:
    put_manifest(aws)
    [result] = dataset_ready.handler(s3_event("dataset_ready.json", BUCKET, MANIFEST_KEY), lambda_context)
    name = tuning_job_name("dogclf", DATASET)
    assert result == {
        "action": "tuning-from-images",
        "tuning_job_name": name,
        "created": True,
        "dataset_id": DATASET,
        "channels": ["train", "valid", "test"],
    }
    assert len(name) <= 32

    job = boto3.client("sagemaker", region_name=REGION).describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name
    )
    config = job["HyperParameterTuningJobConfig"]
    metrics = json.loads((TRAINING_DIR / "dogclf" / "metric_definitions.json").read_text())
    assert config["HyperParameterTuningJobObjective"] == metrics["HyperParameterTuningJobObjective"]
    ranges = config["ParameterRanges"]
    assert [r["Name"] for r in ranges["ContinuousParameterRanges"]] == ["learning_rate"]
    assert [r["Name"] for r in ranges["IntegerParameterRanges"]] == ["epochs"]
    assert ranges["CategoricalParameterRanges"] == [{"Name": "batch_size", "Values": ["32", "64", "128"]}]

    definition = job["TrainingJobDefinition"]
    assert definition["AlgorithmSpecification"]["MetricDefinitions"] == metrics["MetricDefinitions"]
    assert definition["AlgorithmSpecification"]["TrainingImage"] == (
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.6.0-cpu-py312"
    )
    assert [c["ChannelName"] for c in definition["InputDataConfig"]] == ["train", "valid", "test"]
    assert definition["InputDataConfig"][1]["DataSource"]["S3DataSource"]["S3Uri"] == (
        f"s3://{BUCKET}/datasets/{DATASET}/valid/"
    )
    static = definition["StaticHyperParameters"]
    decoded = {key: json.loads(value) for key, value in static.items()}  # every value JSON-encoded
    assert decoded["sagemaker_program"] == "hpo.py"
    assert decoded["weights"] == "none" and decoded["image_size"] == 224
    assert decoded["augment"] is True  # random crops and flips: the reason trials read the images
    assert decoded["dataset_manifest"] == f"s3://{BUCKET}/{MANIFEST_KEY}"
    assert decoded["sagemaker_region"] == REGION and decoded["sagemaker_container_log_level"] == 20
    source = decoded["sagemaker_submit_directory"]
    assert source.startswith(f"s3://{ENV['ARTIFACTS_BUCKET']}/code/") and source.endswith("/sourcedir.tar.gz")

    # The trials' source dir holds exactly the entry points and dogclf/: no requirements.txt (the
    # toolkit installs nothing, so no trial needs a package index), no wheels, no caches.
    key = source.split("/", 3)[3]
    body = aws.s3.get_object(Bucket=ENV["ARTIFACTS_BUCKET"], Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        names = archive.getnames()
    assert "requirements.txt" not in names
    assert {
        "features.py",
        "hpo.py",
        "inference.py",
        "dogclf/layout.py",
        "dogclf/metric_definitions.json",
    } <= set(names)
    assert all(
        name in ("features.py", "hpo.py", "train_model.py", "inference.py") or name.startswith("dogclf/")
        for name in names
    )
    assert not any("__pycache__" in name for name in names)
    assert [name for name in names if "requirements" in name or name.endswith(".whl")] == []
    [note] = aws.notifications()
    assert note["subject"] == f"Tuning started: {name}"


def test_duplicate_manifest_event_starts_nothing_twice(dataset_ready, aws, lambda_context) -> None:
    put_manifest(aws)
    event = s3_event("dataset_ready.json", BUCKET, MANIFEST_KEY)
    first = dataset_ready.handler(event, lambda_context)
    second = dataset_ready.handler(event, lambda_context)
    assert first == second
    assert len(aws.notifications()) == 1
    jobs = boto3.client("sagemaker", region_name=REGION).list_hyper_parameter_tuning_jobs()
    assert len(jobs["HyperParameterTuningJobSummaries"]) == 1


def test_existing_tuning_job_is_not_an_error(dataset_ready, aws, lambda_context) -> None:
    put_manifest(aws)
    dataset_ready.handler(s3_event("dataset_ready.json", BUCKET, MANIFEST_KEY, etag="a"), lambda_context)
    # A new delivery (other ETag: the idempotency key differs) for the same dataset.
    [result] = dataset_ready.handler(
        s3_event("dataset_ready.json", BUCKET, MANIFEST_KEY, etag="b"), lambda_context
    )
    assert result["created"] is False


def test_code_archive_is_deterministic_and_uploaded_once(aws) -> None:
    from pipeline.adapters.s3 import S3Store
    from pipeline.source_dir import ensure_uploaded

    first, first_hash = pack(TRAINING_DIR)
    second, second_hash = pack(TRAINING_DIR)
    assert first == second and first_hash == second_hash
    store = S3Store()
    uri = ensure_uploaded(TRAINING_DIR, store, ENV["ARTIFACTS_BUCKET"])
    assert uri == ensure_uploaded(TRAINING_DIR, store, ENV["ARTIFACTS_BUCKET"])
    assert aws.keys(ENV["ARTIFACTS_BUCKET"], "code/") == [uri.split("/", 3)[3]]
