"""The real training code through the emulator: a tuning job of training/hpo.py on a tiny sample
dataset stored as ingest stores it (tar shards), then its best model deployed and invoked with
training/inference.py."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from localcloud.environment.containerenv import REPO_ROOT
from localcloud.sagemaker.server import SageMakerServer
from tests.support.polling import wait_until
from tests.support.sagemaker import ROLE_ARN, client, local_s3

TRAINING_DIR = REPO_ROOT / "training"
BUCKET = "pipeline"

pytestmark = pytest.mark.slow


def source_dir_archive(variant: str = "plain") -> bytes:
    """sourcedir.tar.gz exactly as the Lambda packs it: ``plain`` for the trials (entry points and
    dogclf/), ``profiled`` for train_model.py (plus requirements.txt and its wheels)."""
    from pipeline.source_dir import pack

    archive, _ = pack(TRAINING_DIR, variant)
    return archive


def test_tuning_job_runs_hpo_py_and_best_model_serves(tmp_path: Path) -> None:
    from tools.sample_data import iter_sample_files

    metric_config = json.loads((TRAINING_DIR / "dogclf" / "metric_definitions.json").read_text())
    with local_s3() as s3_url:
        s3 = client("s3", s3_url)
        s3.create_bucket(Bucket=BUCKET)
        sample_image = b""
        # The dataset as ingest stores it: each split as tar shards of <class_dir>/<image> members
        # (under its own prefix: moto's state outlives the server, and a split is shards or folders).
        members: dict[str, list[tuple[str, bytes]]] = {}
        for relative, data in iter_sample_files(
            num_classes=3, train_per_class=6, valid_per_class=3, test_per_class=3, image_size=32, seed=1
        ):
            split, member = relative.split("/", 1)
            members.setdefault(split, []).append((member, data))
            if relative.startswith("test/") and relative.endswith(".jpg"):
                sample_image = data
        shard_keys = []
        for split, split_members in members.items():
            for number, start in enumerate(range(0, len(split_members), 10)):  # 10 images a shard
                buffer = io.BytesIO()
                with tarfile.open(fileobj=buffer, mode="w") as tar:
                    for member, data in split_members[start : start + 10]:
                        info = tarfile.TarInfo(member)
                        info.size = len(data)
                        tar.addfile(info, io.BytesIO(data))
                shard_keys.append(f"sharded/{split}/{split}-{number:05d}.tar")
                s3.put_object(Bucket=BUCKET, Key=shard_keys[-1], Body=buffer.getvalue())
        assert "sharded/train/train-00001.tar" in shard_keys and len(shard_keys) == 4
        s3.put_object(Bucket=BUCKET, Key="code/sourcedir.tar.gz", Body=source_dir_archive())

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
                                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/sharded/"}
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
            desc = wait_until(
                lambda: sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="dogs-hpo"),
                lambda d: d["HyperParameterTuningJobStatus"] != "InProgress",
                timeout_s=300,
                interval_s=0.5,
                what="tuning job 'dogs-hpo' ended",
            )
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


def test_profiled_training_job_runs_train_model_py_with_debugger_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The in-script request the pipeline's Lambda sends (hook sized from the dataset, no rule
    configurations, service profiler off), run for real: every rule rests on enough saved steps and
    the emulator, like SageMaker, reports no rule statuses for rules nobody configured."""
    from dogclf import contract
    from dogclf.debugger.hook_config import debug_hook_config
    from tools.sample_data import iter_sample_files

    classes, train_per_class, valid_per_class, batch_size, epochs = 3, 16, 4, 8, 4
    metric_config = json.loads((TRAINING_DIR / "dogclf" / "metric_definitions.json").read_text())
    hook_config = debug_hook_config(
        train_examples=classes * train_per_class,
        valid_examples=classes * valid_per_class,
        batch_size=batch_size,
        epochs=epochs,
    )
    with local_s3() as s3_url:
        s3 = client("s3", s3_url)
        s3.create_bucket(Bucket=BUCKET)
        for relative, data in iter_sample_files(
            num_classes=classes,
            train_per_class=train_per_class,
            valid_per_class=valid_per_class,
            test_per_class=3,
            image_size=32,
            seed=2,
        ):
            s3.put_object(Bucket=BUCKET, Key=f"dataset/{relative}", Body=data)
        s3.put_object(Bucket=BUCKET, Key="code/sourcedir.tar.gz", Body=source_dir_archive("profiled"))
        # DebuggerMode=builtin's request (a DebugHookConfig): an account that still has Debugger.
        monkeypatch.setenv("LOCALCLOUD_DEBUGGER_ACCESS", "open")
        server = SageMakerServer(state_dir=tmp_path / "state", s3_endpoint_url=s3_url).start()
        try:
            sm = client("sagemaker", server.url)
            sm.create_training_job(
                TrainingJobName="dogs-profiled",
                HyperParameters={
                    "sagemaker_submit_directory": f'"s3://{BUCKET}/code/sourcedir.tar.gz"',
                    "sagemaker_program": '"train_model.py"',
                    "weights": '"none"',
                    "epochs": str(epochs),
                    "image_size": "32",
                    "batch_size": str(batch_size),
                    "num_workers": "0",
                    "learning_rate": "0.001",
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
                DebugHookConfig={"S3OutputPath": f"s3://{BUCKET}/debug-output/", **hook_config},
                ProfilerConfig={"DisableProfiler": True},
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
            # No rule was configured, so SageMaker reports none (the verdicts live in output.tar.gz).
            assert not desc.get("DebugRuleEvaluationStatuses")
            assert not desc.get("ProfilerRuleEvaluationStatuses")
            output = s3.get_object(Bucket=BUCKET, Key="training/dogs-profiled/output/output.tar.gz")
            with tarfile.open(fileobj=io.BytesIO(output["Body"].read()), mode="r:gz") as archive:
                names = {Path(m.name).name: m for m in archive.getmembers() if m.isfile()}
                assert {contract.PROFILER_REPORT_FILE, contract.LOSS_PLOT_FILE} <= set(names)
                verdicts_file = archive.extractfile(names[contract.RULE_VERDICTS_FILE])
                assert verdicts_file is not None
                verdicts = {v["RuleConfigurationName"]: v for v in json.load(verdicts_file)["rules"]}
            assert set(contract.RULE_NAMES) <= set(verdicts)
            for name in contract.RULE_NAMES:
                verdict = verdicts[name]
                assert verdict[contract.STEPS_EVALUATED_KEY] >= contract.MIN_RULE_STEPS, verdict
                assert not verdict["StatusDetails"].startswith(contract.NOT_ENOUGH_DATA), verdict
            assert contract.PROFILER_REPORT_RULE in verdicts
            keys = [
                o["Key"]
                for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="debug-output/dogs-profiled/")["Contents"]
            ]
            assert keys, "smdebug wrote no tensors where DebugHookConfig pointed"
        finally:
            server.stop()
