"""The emulator's Describe*/List* answers carry every member AWS returns for the state they describe,
and it accepts every request shape the API accepts for what it emulates.

Each answer is walked against botocore's output shape (tests/support/shapes.py). What AWS leaves out
in the state at hand is listed below with the reason; anything else missing fails with its path. The
cases came from running the SageMaker Python SDK v2 against the emulator: ``HyperparameterTuner.fit`` sends
``HyperParameterTuningResourceConfig`` instead of ``ResourceConfig``, and ``attach`` reads
``OutputDataConfig.KmsKeyId`` from DescribeTrainingJob unconditionally.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import pytest

from localcloud.sagemaker.server import SageMakerServer
from tests.localcloud.sagemaker.test_tuning_jobs import wait_tuning
from tests.support.fixtures import fixture_text
from tests.support.sagemaker import ROLE_ARN, client, local_s3, tar_gz, training_job_request
from tests.support.shapes import missing_members

pytestmark = pytest.mark.slow  # a training job and a tuning job through the training toolkit

BUCKET = "shapes"
SCRIPT = fixture_text("sagemaker/response_shapes_train.py")
METRICS = [{"Name": "score", "Regex": "#metric score=([-+0-9.eE]+);"}]

# Members of the request's own structures that AWS fills in when the request leaves them out.
ECHOED: dict[str, frozenset[str]] = {
    # KmsKeyId: "" when unset (the SDK's estimator.attach indexes it; estimator.py
    # _prepare_init_params_from_job_description).
    "OutputDataConfig": frozenset({"KmsKeyId"}),
    "ResourceConfig": frozenset({"InstanceType", "InstanceCount", "VolumeSizeInGB"}),
    "AlgorithmSpecification": frozenset(),
    "Channel": frozenset(),
    "DataSource": frozenset(),
    "S3DataSource": frozenset(),
    "StoppingCondition": frozenset({"MaxRuntimeInSeconds"}),
    "HyperParameterTuningJobConfig": frozenset(),
    "HyperParameterTrainingJobDefinition": frozenset(),
    "HyperParameterTuningResourceConfig": frozenset(),
    "HyperParameterAlgorithmSpecification": frozenset(),
    "ResourceLimits": frozenset(),
    "ParameterRanges": frozenset(),
}
# DescribeHyperParameterTuningJob echoes the definition's OutputDataConfig as sent: the SDK's tuner adds
# ``KmsKeyId: ""`` itself when it is missing there (sagemaker/tuner.py
# ``_prepare_estimator_from_job_description``), unlike for DescribeTrainingJob.
TUNING_ECHOED = {**ECHOED, "OutputDataConfig": frozenset()}
NOT_EMULATED = "a feature the emulator refuses or does not offer (docs/local.md)"
NOT_REQUESTED = "AWS returns it only when the request set it; these requests do not"
TRAINING_ABSENT: dict[str, str] = {
    "DescribeTrainingJobResponse.LabelingJobArn": "only for jobs a labeling job created",
    "DescribeTrainingJobResponse.AutoMLJobArn": "only for jobs an AutoML job created",
    "DescribeTrainingJobResponse.FailureReason": "only for a failed job",
    "DescribeTrainingJobResponse.WarmPoolStatus": "only with ResourceConfig.KeepAlivePeriodInSeconds",
    "DescribeTrainingJobResponse.VpcConfig": NOT_REQUESTED,
    "DescribeTrainingJobResponse.CheckpointConfig": NOT_REQUESTED,
    "DescribeTrainingJobResponse.BillableTokenCount": "serverless (token-billed) jobs only",
    "DescribeTrainingJobResponse.DebugHookConfig": NOT_REQUESTED,
    "DescribeTrainingJobResponse.ExperimentConfig": NOT_REQUESTED,
    "DescribeTrainingJobResponse.DebugRuleConfigurations": NOT_REQUESTED,
    "DescribeTrainingJobResponse.TensorBoardOutputConfig": NOT_REQUESTED,
    "DescribeTrainingJobResponse.DebugRuleEvaluationStatuses": NOT_REQUESTED,
    "DescribeTrainingJobResponse.ProfilerConfig": NOT_REQUESTED,
    "DescribeTrainingJobResponse.ProfilerRuleConfigurations": NOT_REQUESTED,
    "DescribeTrainingJobResponse.ProfilerRuleEvaluationStatuses": NOT_REQUESTED,
    "DescribeTrainingJobResponse.ProfilingStatus": NOT_REQUESTED,
    "DescribeTrainingJobResponse.Environment": NOT_REQUESTED,
    "DescribeTrainingJobResponse.RetryStrategy": NOT_REQUESTED,
    "DescribeTrainingJobResponse.RemoteDebugConfig": NOT_REQUESTED,
    "DescribeTrainingJobResponse.InfraCheckConfig": NOT_REQUESTED,
    "DescribeTrainingJobResponse.ServerlessJobConfig": NOT_EMULATED,
    "DescribeTrainingJobResponse.MlflowConfig": NOT_EMULATED,
    "DescribeTrainingJobResponse.ModelPackageConfig": NOT_EMULATED,
    "DescribeTrainingJobResponse.MlflowDetails": NOT_EMULATED,
    "DescribeTrainingJobResponse.ProgressInfo": NOT_EMULATED,
    "DescribeTrainingJobResponse.OutputModelPackageArn": NOT_EMULATED,
    "ListTrainingJobsResponse.NextToken": "only when more results follow",
    "TrainingJobSummary.WarmPoolStatus": "only with ResourceConfig.KeepAlivePeriodInSeconds",
    "TrainingJobSummary.TrainingPlanArn": "only for jobs on a training plan",
}
TUNING_ABSENT: dict[str, str] = {
    "DescribeTrainingJobResponse.TuningJobArn": "set on trials only",
    "DescribeHyperParameterTuningJobResponse.TrainingJobDefinitions": "sent: TrainingJobDefinition",
    "DescribeHyperParameterTuningJobResponse.OverallBestTrainingJob": "only with a WarmStartConfig",
    "DescribeHyperParameterTuningJobResponse.WarmStartConfig": NOT_REQUESTED,
    "DescribeHyperParameterTuningJobResponse.Autotune": NOT_REQUESTED,
    "DescribeHyperParameterTuningJobResponse.FailureReason": "only for a failed tuning job",
    "DescribeHyperParameterTuningJobResponse.TuningJobCompletionDetails": NOT_EMULATED,
    "DescribeHyperParameterTuningJobResponse.ConsumedResources": NOT_EMULATED,
    "ListHyperParameterTuningJobsResponse.NextToken": "only when more results follow",
    "ListTrainingJobsForHyperParameterTuningJobResponse.NextToken": "only when more results follow",
    "HyperParameterTrainingJobSummary.TrainingJobDefinitionName": "only with TrainingJobDefinitions",
    "HyperParameterTrainingJobSummary.FailureReason": "only for a failed trial",
}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with local_s3() as s3_url:
        s3 = client("s3", s3_url)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="code/source.tar.gz", Body=tar_gz({"train.py": SCRIPT}))
        s3.put_object(Bucket=BUCKET, Key="data/train/a.txt", Body=b"x")
        server = SageMakerServer(
            state_dir=tmp_path_factory.mktemp("sagemaker"), s3_endpoint_url=s3_url
        ).start()
        try:
            yield {"sm": client("sagemaker", server.url)}
        finally:
            server.stop()


def _training_request(name: str) -> dict[str, Any]:
    return training_job_request(
        name,
        BUCKET,
        f"s3://{BUCKET}/code/source.tar.gz",
        hyperparameters={"learning_rate": "0.5"},
        metric_definitions=METRICS,
        channels={"train": f"s3://{BUCKET}/data/train/"},
    )


def _tuning_request(name: str, resources: dict[str, Any]) -> dict[str, Any]:
    """A tuning request shaped as the SageMaker Python SDK v2's HyperparameterTuner sends it."""
    job = _training_request("unused")
    definition = {
        "StaticHyperParameters": {
            key: value for key, value in job["HyperParameters"].items() if key != "learning_rate"
        },
        "AlgorithmSpecification": job["AlgorithmSpecification"],
        "RoleArn": ROLE_ARN,
        "InputDataConfig": job["InputDataConfig"],
        "OutputDataConfig": job["OutputDataConfig"],
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "EnableNetworkIsolation": False,
        "EnableInterContainerTrafficEncryption": False,
        "EnableManagedSpotTraining": False,
        **resources,
    }
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": "Random",
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "score"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 1, "MaxParallelTrainingJobs": 1},
            "ParameterRanges": {
                "ContinuousParameterRanges": [
                    {"Name": "learning_rate", "MinValue": "0.1", "MaxValue": "0.9", "ScalingType": "Auto"}
                ],
                "IntegerParameterRanges": [],
                "CategoricalParameterRanges": [],
            },
            "TrainingJobEarlyStoppingType": "Off",
        },
        "TrainingJobDefinition": definition,
    }


SDK_RESOURCES = {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30}


@pytest.fixture(scope="module")
def completed_training_job(cloud: dict[str, Any]) -> str:
    sm = cloud["sm"]
    sm.create_training_job(**_training_request("shapes-train"))
    sm.get_waiter("training_job_completed_or_stopped").wait(
        TrainingJobName="shapes-train", WaiterConfig={"Delay": 1, "MaxAttempts": 240}
    )
    return "shapes-train"


@pytest.fixture(scope="module")
def completed_tuning_job(cloud: dict[str, Any]) -> str:
    """Tuned with ``HyperParameterTuningResourceConfig``, as SDK v2 sends it."""
    sm = cloud["sm"]
    sm.create_hyper_parameter_tuning_job(
        **_tuning_request("shapes-tune", {"HyperParameterTuningResourceConfig": SDK_RESOURCES})
    )
    assert wait_tuning(sm, "shapes-tune")["HyperParameterTuningJobStatus"] == "Completed"
    return "shapes-tune"


def test_describe_training_job_when_completed_has_every_member_aws_returns(
    cloud: dict[str, Any], completed_training_job: str
) -> None:
    desc = cloud["sm"].describe_training_job(TrainingJobName=completed_training_job)
    assert desc["TrainingJobStatus"] == "Completed"
    absent = {**TRAINING_ABSENT, **TUNING_ABSENT}
    assert missing_members("sagemaker", "DescribeTrainingJob", desc, absent, ECHOED) == []
    assert desc["OutputDataConfig"]["KmsKeyId"] == ""


def test_list_training_jobs_summaries_have_every_member_aws_returns(
    cloud: dict[str, Any], completed_training_job: str
) -> None:
    listed = cloud["sm"].list_training_jobs(NameContains=completed_training_job)
    assert [row["TrainingJobName"] for row in listed["TrainingJobSummaries"]] == [completed_training_job]
    assert missing_members("sagemaker", "ListTrainingJobs", listed, TRAINING_ABSENT, ECHOED) == []


def test_tuning_with_the_sdks_resource_config_runs_trials_with_that_config(
    cloud: dict[str, Any], completed_tuning_job: str
) -> None:
    sm = cloud["sm"]
    tuning = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=completed_tuning_job)
    assert tuning["HyperParameterTuningJobStatus"] == "Completed"
    assert tuning["TrainingJobDefinition"]["HyperParameterTuningResourceConfig"] == SDK_RESOURCES
    best = tuning["BestTrainingJob"]["TrainingJobName"]
    trial = sm.describe_training_job(TrainingJobName=best)
    assert trial["TrainingJobStatus"] == "Completed"
    assert trial["ResourceConfig"] == SDK_RESOURCES
    assert trial["OutputDataConfig"]["KmsKeyId"] == ""


def test_tuning_descriptions_and_lists_have_every_member_aws_returns(
    cloud: dict[str, Any], completed_tuning_job: str
) -> None:
    sm = cloud["sm"]
    absent = {**TRAINING_ABSENT, **TUNING_ABSENT}
    tuning = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=completed_tuning_job)
    operation = "DescribeHyperParameterTuningJob"
    assert missing_members("sagemaker", operation, tuning, absent, TUNING_ECHOED) == []
    listed = sm.list_hyper_parameter_tuning_jobs(NameContains=completed_tuning_job)
    assert len(listed["HyperParameterTuningJobSummaries"]) == 1
    assert missing_members("sagemaker", "ListHyperParameterTuningJobs", listed, absent, TUNING_ECHOED) == []
    trials = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=completed_tuning_job
    )
    assert len(trials["TrainingJobSummaries"]) == 1
    operation = "ListTrainingJobsForHyperParameterTuningJob"
    assert missing_members("sagemaker", operation, trials, absent, ECHOED) == []
    trial = sm.describe_training_job(TrainingJobName=trials["TrainingJobSummaries"][0]["TrainingJobName"])
    trial_absent = {k: v for k, v in absent.items() if k != "DescribeTrainingJobResponse.TuningJobArn"}
    assert missing_members("sagemaker", "DescribeTrainingJob", trial, trial_absent, ECHOED) == []


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        pytest.param({}, "ResourceConfig or", id="neither"),
        pytest.param(
            {"ResourceConfig": SDK_RESOURCES, "HyperParameterTuningResourceConfig": SDK_RESOURCES},
            "not both",
            id="both",
        ),
        pytest.param(
            {"HyperParameterTuningResourceConfig": {**SDK_RESOURCES, "InstanceCount": 2}},
            "single-instance",
            id="two-instances",
        ),
    ],
)
def test_tuning_resource_configs_the_api_refuses_are_refused(
    cloud: dict[str, Any], resources: dict[str, Any], message: str
) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        cloud["sm"].create_hyper_parameter_tuning_job(**_tuning_request("shapes-refused", resources))
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert message in caught.value.response["Error"]["Message"]


def test_the_walker_reports_a_member_the_answer_leaves_out() -> None:
    """The check itself can fail: an answer without KmsKeyId (as the emulator answered before the SDK v2
    suite) is caught."""
    answer = {"OutputDataConfig": {"S3OutputPath": "s3://b/p"}}
    missing = missing_members("sagemaker", "DescribeTrainingJob", answer, {}, ECHOED)
    assert "OutputDataConfig.KmsKeyId at DescribeTrainingJob.OutputDataConfig" in missing
    assert "unknown exception NoSuchShape.Member" in missing_members(
        "sagemaker", "DescribeTrainingJob", answer, {"NoSuchShape.Member": "typo"}, ECHOED
    )


def test_tags_are_listed_added_and_deleted(cloud: dict[str, Any], completed_training_job: str) -> None:
    """The SDK's ``attach`` lists a job's tags (``EstimatorBase.attach`` -> ``list_tags``)."""
    sm = cloud["sm"]
    arn = sm.describe_training_job(TrainingJobName=completed_training_job)["TrainingJobArn"]
    assert sm.list_tags(ResourceArn=arn)["Tags"] == []
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "project", "Value": "dogs"}, {"Key": "stage", "Value": "x"}])
    sm.delete_tags(ResourceArn=arn, TagKeys=["stage"])
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "project", "Value": "dogs"}]
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        sm.list_tags(ResourceArn="arn:aws:s3:::not-sagemaker")
    assert caught.value.response["Error"]["Code"] == "ValidationException"
