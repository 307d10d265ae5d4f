"""The seed notebook's flow with the SageMaker Python SDK v2, unmodified, against the local cloud.

PyTorch estimator on training/hpo.py under a HyperparameterTuner (its default request shape),
``best_estimator()``, ``attach``; a profiled estimator on train_model.py with the seed's four Debugger
rules, a ProfilerReport and its profiler settings; ``PyTorchModel(..., source_dir=...).deploy()``
(code/requirements.txt included); every ``source_dir`` is the training code as the pipeline ships it
(``notebook.source_dir()``: wheels, no package index); a Predictor with image and JSON serializers; boto3's
``invoke_endpoint``, a 400 for a bad image; ``delete_endpoint``. Small: sample data at 64 px, one
trial, one epoch. Settings are the endpoint ones only (conftest.py).
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import sagemaker
from botocore.exceptions import ClientError
from sagemaker.debugger import DebuggerHookConfig
from sagemaker.deserializers import JSONDeserializer
from sagemaker.pytorch import PyTorch, PyTorchModel
from sagemaker.serializers import IdentitySerializer, JSONSerializer
from sagemaker.tuner import HyperparameterTuner

from tests.sdk.notebook import (
    SEED_HOOK_PARAMETERS,
    pytorch_estimator,
    seed_profiler_config,
    seed_rules,
    source_dir,
)
from tests.sdk.settings import (
    FRAMEWORK,
    HYPERPARAMETERS,
    JOB_PREFIX,
    OBJECTIVE,
    PY_VERSION,
    TRAINING_INSTANCE,
    jpeg,
)
from tests.support.seed_settings import SEED_PROFILER_CONFIG

pytestmark = pytest.mark.slow


def test_tuner_fit_with_its_default_request_shape_completes(tuner: HyperparameterTuner) -> None:
    description = tuner.describe()
    assert description["HyperParameterTuningJobStatus"] == "Completed", description.get("FailureReason")
    # The SDK's own shape: HyperParameterTuningResourceConfig, not ResourceConfig.
    assert "HyperParameterTuningResourceConfig" in description["TrainingJobDefinition"]
    assert description["TrainingJobStatusCounters"]["Completed"] == 1


def test_best_estimator_and_attach_read_the_job_back(
    tuner: HyperparameterTuner, artifacts_bucket: str
) -> None:
    best = tuner.best_estimator()
    assert best.model_data.startswith(f"s3://{artifacts_bucket}/{JOB_PREFIX}/")
    assert best.output_kms_key == ""  # DescribeTrainingJob's OutputDataConfig.KmsKeyId, unset
    attached = PyTorch.attach(best.latest_training_job.name, sagemaker_session=tuner.sagemaker_session)
    assert attached.model_data == best.model_data
    assert attached.instance_type == TRAINING_INSTANCE
    assert float(attached.hyperparameters()["learning_rate"]) >= 0.001


def test_logs_for_job_prints_the_trials_lines_from_cloudwatch_logs(
    tuner: HyperparameterTuner, session: sagemaker.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    """The SDK's log streaming (what ``fit(logs="All")`` runs): /aws/sagemaker/TrainingJobs, the job's
    ``<job>/algo-1-<epoch>`` stream, read through the AWS_ENDPOINT_URL_LOGS the cloud exports."""
    trial = tuner.best_training_job()
    capsys.readouterr()
    session.logs_for_job(trial, wait=True)
    out = capsys.readouterr().out
    objective = [line for line in out.splitlines() if re.search(OBJECTIVE["Regex"], line)]
    assert objective, out[-2000:]
    described = session.sagemaker_client.describe_training_job(TrainingJobName=trial)
    final = {m["MetricName"]: m["Value"] for m in described["FinalMetricDataList"]}
    # The last objective line in the log is the value the tuner judged the trial by.
    last = re.search(OBJECTIVE["Regex"], objective[-1])
    assert last and float(last[1]) == pytest.approx(final[OBJECTIVE["Name"]])


@pytest.fixture(scope="module")
def profiled(session: sagemaker.Session, training_uri: str, execution_role: str) -> PyTorch:
    estimator = pytorch_estimator(
        session,
        execution_role,
        "train_model.py",
        hyperparameters={**HYPERPARAMETERS, "learning_rate": 0.003},
        rules=seed_rules(),
        debugger_hook_config=DebuggerHookConfig(hook_parameters=SEED_HOOK_PARAMETERS),
        profiler_config=seed_profiler_config(),
    )
    estimator.fit({"training": training_uri}, wait=True)
    return estimator


def test_the_seeds_profiler_settings_are_what_the_training_suite_runs() -> None:
    """tests/training/test_profiler_settings.py runs SEED_PROFILER_CONFIG without the SDK: it must be
    exactly what this SDK sends for the seed's settings."""
    assert seed_profiler_config()._to_request_dict() == SEED_PROFILER_CONFIG


def test_profiled_job_with_the_seeds_rules_and_profiler_completes(profiled: PyTorch) -> None:
    from dogclf.contract import NOT_ENOUGH_DATA  # training/ is on the path (tests/sdk/notebook.py)

    job = profiled.latest_training_job
    assert job is not None
    description = job.describe()
    assert description["TrainingJobStatus"] == "Completed", description.get("FailureReason")
    assert description["ProfilerConfig"]["ProfilingIntervalInMilliseconds"] == 500
    debug_rules = {rule["RuleConfigurationName"]: rule for rule in description["DebugRuleEvaluationStatuses"]}
    assert set(debug_rules) == {"VanishingGradient", "Overfit", "Overtraining", "PoorWeightInitialization"}
    for rule in debug_rules.values():
        # Each rule reached a verdict. On a job this small the seed's save intervals (and the rules'
        # own collection intervals) leave too few saved steps to decide, and a rule says so as Error
        # (dogclf/debugger/rules.py, as the in-script verdict the emulator reports).
        status, details = rule["RuleEvaluationStatus"], rule.get("StatusDetails", "")
        assert status in {"NoIssuesFound", "IssuesFound"} or NOT_ENOUGH_DATA in details, rule
    [report] = description["ProfilerRuleEvaluationStatuses"]
    assert report["RuleConfigurationName"] == "ProfilerReport"
    assert report["RuleEvaluationStatus"] in {"NoIssuesFound", "IssuesFound"}, report
    assert job.rule_job_summary()  # the SDK's own reading of the statuses


@pytest.fixture(scope="module")
def predictor(session: sagemaker.Session, tuner: HyperparameterTuner, execution_role: str) -> Iterator[Any]:
    """The seed's deploy: the best model with the training code as its code (code/requirements.txt
    included, installed from its shipped wheels)."""
    model = PyTorchModel(
        model_data=tuner.best_estimator().model_data,
        role=execution_role,
        entry_point="inference.py",
        source_dir=source_dir(),
        framework_version=FRAMEWORK,
        py_version=PY_VERSION,
        sagemaker_session=session,
    )
    predictor = model.deploy(
        initial_instance_count=1,
        instance_type="ml.m5.large",
        serializer=IdentitySerializer("image/jpeg"),
        deserializer=JSONDeserializer(),
    )
    yield predictor
    try:
        predictor.delete_endpoint()  # when a test failed before test_delete_endpoint
    except ClientError as error:
        assert "Could not find endpoint" in error.response["Error"]["Message"]


def test_predictor_classifies_with_the_image_and_json_serializers(predictor: Any) -> None:
    answer = predictor.predict(jpeg())
    assert len(answer["predictions"]) == 3
    assert answer["label"] == answer["predictions"][0]["label"]
    predictor.serializer = JSONSerializer()
    as_json = predictor.predict({"image": base64.b64encode(jpeg()).decode(), "top_k": 2})
    assert len(as_json["predictions"]) == 2
    assert as_json["label"] == answer["label"]  # the same image, the same model
    predictor.serializer = IdentitySerializer("image/jpeg")


def test_boto3_invoke_endpoint_and_a_bad_image(predictor: Any, user_environment: dict[str, str]) -> None:
    runtime = boto3.client("sagemaker-runtime", region_name=user_environment["AWS_REGION"])
    response = runtime.invoke_endpoint(
        EndpointName=predictor.endpoint_name, Body=jpeg(), ContentType="image/jpeg", Accept="application/json"
    )
    assert len(json.loads(response["Body"].read())["predictions"]) == 3
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint(
            EndpointName=predictor.endpoint_name, Body=b"not an image", ContentType="image/jpeg"
        )
    assert caught.value.response["Error"]["Code"] == "ModelError"
    assert caught.value.response["OriginalStatusCode"] == 400


def test_the_endpoints_log_is_in_its_cloudwatch_group(
    predictor: Any, user_environment: dict[str, str]
) -> None:
    """TorchServe's and the handler's output: /aws/sagemaker/Endpoints/<name>, stream
    ``<variant>/<instance id>``. Lines arrive as the server writes them (no flush until it stops), so
    the check polls, bounded."""
    logs = boto3.client("logs", region_name=user_environment["AWS_REGION"])
    group = f"/aws/sagemaker/Endpoints/{predictor.endpoint_name}"
    deadline = time.monotonic() + 60
    events: list[dict[str, Any]] = []
    while not any(e["message"] == "Model server started." for e in events) and time.monotonic() < deadline:
        try:
            events = logs.filter_log_events(logGroupName=group)["events"]
        except logs.exceptions.ResourceNotFoundException:
            events = []
        time.sleep(1)
    assert any(e["message"] == "Model server started." for e in events), events[-20:]
    assert {e["logStreamName"].split("/")[0] for e in events} == {"AllTraffic"}
    assert all(re.fullmatch(r"AllTraffic/i-[0-9a-f]{17}", e["logStreamName"]) for e in events)


def test_delete_endpoint(predictor: Any, session: sagemaker.Session) -> None:
    name = predictor.endpoint_name
    predictor.delete_endpoint()
    with pytest.raises(ClientError) as caught:
        session.sagemaker_client.describe_endpoint(EndpointName=name)
    assert caught.value.response["Error"]["Code"] == "ValidationException"
