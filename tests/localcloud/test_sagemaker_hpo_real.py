"""The real training code through the emulator: a tuning job of training/hpo.py on a tiny sample
dataset, then its best model deployed and invoked with training/inference.py."""

from __future__ import annotations

import io
import json
import sys
import tarfile
import time
from pathlib import Path

import pytest

from localcloud.sagemaker.server import SageMakerServer
from localcloud.sagemaker.testing import ROLE_ARN, client, local_s3, tar_gz_directory

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAINING_DIR = REPO_ROOT / "training"
BUCKET = "pipeline"

pytestmark = pytest.mark.slow


def source_dir_archive(tmp_path: Path) -> bytes:
    """The sagemaker_submit_directory as docs/contracts.md fixes it: entry points + dogclf/."""
    staging = tmp_path / "source"
    staging.mkdir()
    for name in ("hpo.py", "train_model.py", "inference.py"):
        (staging / name).write_bytes((TRAINING_DIR / name).read_bytes())
    for path in (TRAINING_DIR / "dogclf").rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            target = staging / path.relative_to(TRAINING_DIR)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    return tar_gz_directory(staging)


def test_tuning_job_runs_hpo_py_and_best_model_serves(tmp_path: Path) -> None:
    sys.path.insert(0, str(TRAINING_DIR))  # torch-free helpers only (layout)
    from tools.sample_data import iter_sample_files

    metric_config = json.loads((TRAINING_DIR / "dogclf" / "metric_definitions.json").read_text())
    with local_s3() as s3_url:
        s3 = client("s3", s3_url)
        s3.create_bucket(Bucket=BUCKET)
        sample_image = b""
        for relative, data in iter_sample_files(
            num_classes=3, train_per_class=6, valid_per_class=3, test_per_class=3, image_size=32, seed=1
        ):
            s3.put_object(Bucket=BUCKET, Key=f"dataset/{relative}", Body=data)
            if relative.startswith("test/") and relative.endswith(".jpg"):
                sample_image = data
        s3.put_object(Bucket=BUCKET, Key="code/sourcedir.tar.gz", Body=source_dir_archive(tmp_path))

        server = SageMakerServer(state_dir=tmp_path / "state", s3_endpoint_url=s3_url).start()
        try:
            sm = client("sagemaker", server.url)
            sm.create_hyper_parameter_tuning_job(
                HyperParameterTuningJobName="dogs-hpo",
                HyperParameterTuningJobConfig={
                    "Strategy": "Bayesian",
                    "HyperParameterTuningJobObjective": metric_config["HyperParameterTuningJobObjective"],
                    "ResourceLimits": {"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 2},
                    "ParameterRanges": {
                        "ContinuousParameterRanges": [
                            {
                                "Name": "learning_rate",
                                "MinValue": "0.001",
                                "MaxValue": "0.1",
                                "ScalingType": "Logarithmic",
                            }
                        ],
                    },
                    "RandomSeed": 3,
                },
                TrainingJobDefinition={
                    "StaticHyperParameters": {
                        "sagemaker_submit_directory": f'"s3://{BUCKET}/code/sourcedir.tar.gz"',
                        "sagemaker_program": '"hpo.py"',
                        "weights": '"none"',
                        "epochs": "1",
                        "image_size": "32",
                        "batch_size": "8",
                        "num_workers": "0",
                    },
                    "AlgorithmSpecification": {
                        "TrainingImage": "pytorch-training:local",
                        "TrainingInputMode": "File",
                        "MetricDefinitions": metric_config["MetricDefinitions"],
                    },
                    "RoleArn": ROLE_ARN,
                    "InputDataConfig": [
                        {
                            "ChannelName": "training",
                            "DataSource": {
                                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/dataset/"}
                            },
                        }
                    ],
                    "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/hpo-output"},
                    "ResourceConfig": {
                        "InstanceType": "ml.m5.xlarge",
                        "InstanceCount": 1,
                        "VolumeSizeInGB": 5,
                    },
                    "StoppingCondition": {"MaxRuntimeInSeconds": 600},
                },
            )
            deadline = time.monotonic() + 300
            while (desc := sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="dogs-hpo"))[
                "HyperParameterTuningJobStatus"
            ] == "InProgress":
                assert time.monotonic() < deadline
                time.sleep(1)
            trials = sm.list_training_jobs_for_hyper_parameter_tuning_job(
                HyperParameterTuningJobName="dogs-hpo"
            )
            reasons = [t.get("FailureReason") for t in trials["TrainingJobSummaries"]]
            assert desc["HyperParameterTuningJobStatus"] == "Completed", reasons
            best = desc["BestTrainingJob"]
            accuracy = best["FinalHyperParameterTuningJobObjectiveMetric"]
            assert accuracy["MetricName"] == "valid:accuracy" and 0.0 <= accuracy["Value"] <= 1.0

            job = sm.describe_training_job(TrainingJobName=best["TrainingJobName"])
            model_uri = job["ModelArtifacts"]["S3ModelArtifacts"]
            archive = s3.get_object(Bucket=BUCKET, Key=model_uri.split(f"{BUCKET}/", 1)[1])["Body"].read()
            with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
                names = set(tar.getnames())
            assert {"model.pth", "classes.json", "model_meta.json", "code/inference.py"} <= names

            sm.create_model(
                ModelName="dogs",
                ExecutionRoleArn=ROLE_ARN,
                PrimaryContainer={"Image": "x", "ModelDataUrl": model_uri},
            )
            sm.create_endpoint_config(
                EndpointConfigName="dogs",
                ProductionVariants=[
                    {
                        "VariantName": "AllTraffic",
                        "ModelName": "dogs",
                        "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 2},
                    }
                ],
            )
            sm.create_endpoint(EndpointName="dogs", EndpointConfigName="dogs")
            sm.get_waiter("endpoint_in_service").wait(
                EndpointName="dogs", WaiterConfig={"Delay": 1, "MaxAttempts": 120}
            )
            runtime = client("sagemaker-runtime", server.url)
            response = runtime.invoke_endpoint(
                EndpointName="dogs", Body=sample_image, ContentType="image/jpeg"
            )
            prediction = json.loads(response["Body"].read())
            classes = json.loads(tar_member(archive, "classes.json"))
            assert prediction["label"] in classes
            assert 0.0 <= prediction["probability"] <= 1.0
            with pytest.raises(runtime.exceptions.ModelError) as error:
                runtime.invoke_endpoint(EndpointName="dogs", Body=b"not an image", ContentType="image/jpeg")
            assert error.value.response["OriginalStatusCode"] == 400
        finally:
            server.stop()


def tar_member(archive: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        member = tar.extractfile(name)
        assert member is not None
        return member.read()


RULES = ("VanishingGradient", "Overfit", "Overtraining", "PoorWeightInitialization", "LossNotDecreasing")


def test_profiled_training_job_runs_train_model_py_with_debugger_config(tmp_path: Path) -> None:
    """The request the pipeline's Lambda sends (hook + built-in rules + profiler), run for real."""
    sys.path.insert(0, str(TRAINING_DIR))
    from tools.sample_data import iter_sample_files

    metric_config = json.loads((TRAINING_DIR / "dogclf" / "metric_definitions.json").read_text())
    with local_s3() as s3_url:
        s3 = client("s3", s3_url)
        s3.create_bucket(Bucket=BUCKET)
        for relative, data in iter_sample_files(
            num_classes=3, train_per_class=6, valid_per_class=3, test_per_class=3, image_size=32, seed=2
        ):
            s3.put_object(Bucket=BUCKET, Key=f"dataset/{relative}", Body=data)
        s3.put_object(Bucket=BUCKET, Key="code/sourcedir.tar.gz", Body=source_dir_archive(tmp_path))
        server = SageMakerServer(state_dir=tmp_path / "state", s3_endpoint_url=s3_url).start()
        try:
            sm = client("sagemaker", server.url)
            sm.create_training_job(
                TrainingJobName="dogs-profiled",
                HyperParameters={
                    "sagemaker_submit_directory": f'"s3://{BUCKET}/code/sourcedir.tar.gz"',
                    "sagemaker_program": '"train_model.py"',
                    "weights": '"none"',
                    "epochs": "2",
                    "image_size": "32",
                    "batch_size": "8",
                    "num_workers": "0",
                    "learning_rate": "0.01",
                },
                AlgorithmSpecification={
                    "TrainingImage": "pytorch-training:local",
                    "TrainingInputMode": "File",
                    "MetricDefinitions": metric_config["MetricDefinitions"],
                },
                RoleArn=ROLE_ARN,
                InputDataConfig=[
                    {
                        "ChannelName": "training",
                        "DataSource": {
                            "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/dataset/"}
                        },
                    }
                ],
                OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/training/"},
                ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 5},
                StoppingCondition={"MaxRuntimeInSeconds": 600},
                DebugHookConfig={
                    "S3OutputPath": f"s3://{BUCKET}/debug-output/",
                    "CollectionConfigurations": [
                        {"CollectionName": c} for c in ("weights", "gradients", "losses")
                    ],
                },
                DebugRuleConfigurations=[
                    {
                        "RuleConfigurationName": rule,
                        "RuleEvaluatorImage": "rules:local",
                        "RuleParameters": {"rule_to_invoke": rule},
                    }
                    for rule in RULES
                ],
                ProfilerConfig={
                    "S3OutputPath": f"s3://{BUCKET}/profiler-output/",
                    "ProfilingIntervalInMilliseconds": 500,
                },
                ProfilerRuleConfigurations=[
                    {"RuleConfigurationName": "ProfilerReport", "RuleEvaluatorImage": "rules:local"}
                ],
            )
            try:
                sm.get_waiter("training_job_completed_or_stopped").wait(
                    TrainingJobName="dogs-profiled", WaiterConfig={"Delay": 2, "MaxAttempts": 150}
                )
            finally:
                desc = sm.describe_training_job(TrainingJobName="dogs-profiled")
            assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
            metrics = {m["MetricName"] for m in desc["FinalMetricDataList"]}
            assert {"valid:accuracy", "test:accuracy"} <= metrics
            statuses = {
                r["RuleConfigurationName"]: r["RuleEvaluationStatus"]
                for r in desc["DebugRuleEvaluationStatuses"]
            }
            assert set(statuses) == set(RULES)
            assert set(statuses.values()) <= {"IssuesFound", "NoIssuesFound"}  # every rule got a verdict
            profiler = desc["ProfilerRuleEvaluationStatuses"][0]
            assert profiler["RuleEvaluationStatus"] in ("IssuesFound", "NoIssuesFound")
            keys = [
                o["Key"]
                for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="debug-output/dogs-profiled/")["Contents"]
            ]
            assert keys, "smdebug wrote no tensors where DebugHookConfig pointed"
            report = "training/dogs-profiled/rule-output/ProfilerReport/profiler-output/profiler-report.html"
            assert s3.head_object(Bucket=BUCKET, Key=report)["ContentLength"] > 0
        finally:
            server.stop()
