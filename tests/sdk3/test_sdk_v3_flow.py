"""The seed notebook's flow with the SageMaker Python SDK v3, unmodified, against the local cloud.

``ModelTrainer`` on training/hpo.py with the source dir the pipeline ships (``SourceCode``: the SDK
sends ``ContainerEntrypoint``/``ContainerArguments`` and its own driver scripts, which expect the job's
files at /opt/ml); the v3 ``HyperparameterTuner`` on the same trainer (the framework image's script
mode: ``sagemaker_program``/``sagemaker_submit_directory``); deploy with sagemaker-core's resource
classes (``Model``, ``EndpointConfig``, ``Endpoint``: boto3 calls, each response parsed into the SDK's
shapes), ``Endpoint.invoke`` with an image and a bad one, and the deletes. Small: sample data at 64 px,
one trial, one epoch. Settings are the endpoint ones only (tests/sdk/conftest.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError
from sagemaker.core.helper.session_helper import Session
from sagemaker.core.parameter import ContinuousParameter
from sagemaker.core.resources import Endpoint, EndpointConfig, Model, TrainingJob
from sagemaker.core.shapes import ContainerDefinition, ProductionVariant
from sagemaker.core.training.configs import InputData
from sagemaker.train.tuner import HyperparameterTuner

from tests.sdk.settings import JOB_PREFIX, OBJECTIVE, jpeg
from tests.sdk3.notebook import image_uri, model_trainer

pytestmark = pytest.mark.slow


def test_model_trainer_runs_hpo_py_with_its_own_container_entrypoint(
    session: Session, training_uri: str, execution_role: str, artifacts_bucket: str
) -> None:
    trainer = model_trainer(session, execution_role, "hpo.py")
    trainer.train(
        input_data_config=[InputData(channel_name="training", data_source=training_uri)], logs=False
    )
    job = trainer._latest_training_job  # the SDK's documented way to the job (ModelTrainer's docstring)
    assert job is not None
    job = job.refresh()
    assert job.training_job_status == "Completed", job.failure_reason
    # The SDK's own command, not the image's entry: what made the job run its driver scripts.
    assert job.algorithm_specification.container_entrypoint == ["/bin/bash"]
    assert job.model_artifacts.s3_model_artifacts.startswith(f"s3://{artifacts_bucket}/{JOB_PREFIX}/")
    assert job.output_data_config.kms_key_id == ""  # DescribeTrainingJob returns it empty when unset


@pytest.fixture(scope="module")
def tuner(session: Session, training_uri: str, execution_role: str) -> HyperparameterTuner:
    tuner = HyperparameterTuner(
        model_trainer=model_trainer(session, execution_role, "hpo.py"),
        objective_metric_name=OBJECTIVE["Name"],
        hyperparameter_ranges={"learning_rate": ContinuousParameter(0.001, 0.01)},
        metric_definitions=[OBJECTIVE],
        objective_type="Maximize",
        max_jobs=1,
        max_parallel_jobs=1,
    )
    tuner.tune(inputs=[InputData(channel_name="training", data_source=training_uri)], wait=True)
    return tuner


def test_tuner_completes_and_names_its_best_job(session: Session, tuner: HyperparameterTuner) -> None:
    description = tuner.describe()
    assert description.hyper_parameter_tuning_job_status == "Completed", description.failure_reason
    assert description.training_job_status_counters.completed == 1
    best = TrainingJob.get(
        training_job_name=tuner.best_training_job(),
        session=tuner.model_trainer.sagemaker_session.boto_session,
    )
    assert best.training_job_status == "Completed"
    assert 0.001 <= float(json.loads(best.hyper_parameters["learning_rate"])) <= 0.01


@pytest.fixture(scope="module")
def endpoint(session: Session, tuner: HyperparameterTuner, execution_role: str) -> Iterator[Endpoint]:
    """The best trial's model behind Model/EndpointConfig/Endpoint, its code the trial's source dir
    (``sagemaker_submit_directory``), as the SDK's framework models deploy a trained job."""
    boto_session = session.boto_session
    best = TrainingJob.get(training_job_name=tuner.best_training_job(), session=boto_session)
    name = best.training_job_name
    model = Model.create(
        model_name=name,
        primary_container=ContainerDefinition(
            image=image_uri(session, "inference"),
            model_data_url=best.model_artifacts.s3_model_artifacts,
            environment={
                "SAGEMAKER_PROGRAM": "inference.py",
                # SDK v3's tuner sends it as a plain string (v2 JSON-encodes it).
                "SAGEMAKER_SUBMIT_DIRECTORY": best.hyper_parameters["sagemaker_submit_directory"],
                "SAGEMAKER_REGION": session.boto_region_name,
            },
        ),
        execution_role_arn=execution_role,
        session=boto_session,
    )
    config = EndpointConfig.create(
        endpoint_config_name=name,
        production_variants=[
            ProductionVariant(
                variant_name="AllTraffic",
                model_name=name,
                initial_instance_count=1,
                instance_type="ml.m5.large",
            )
        ],
        session=boto_session,
    )
    endpoint = Endpoint.create(endpoint_name=name, endpoint_config_name=name, session=boto_session)
    endpoint.wait_for_status("InService", timeout=300)
    yield endpoint
    for resource in (endpoint, config, model):
        try:
            resource.delete()  # when a test failed before test_delete_endpoint_config_and_model
        except ClientError as error:
            assert "Could not find" in error.response["Error"]["Message"]


def test_endpoint_resource_describes_and_classifies(endpoint: Endpoint) -> None:
    endpoint = endpoint.refresh()
    assert endpoint.endpoint_status == "InService"
    [variant] = endpoint.production_variants
    assert variant.current_instance_count == 1
    answer = endpoint.invoke(body=jpeg(), content_type="image/jpeg", accept="application/json")
    assert answer.invoked_production_variant == "AllTraffic"
    predictions = json.loads(answer.body.read())["predictions"]
    assert len(predictions) == 3


def test_a_bad_image_is_the_models_400(endpoint: Endpoint) -> None:
    with pytest.raises(ClientError) as caught:
        endpoint.invoke(body=b"not an image", content_type="image/jpeg")
    assert caught.value.response["Error"]["Code"] == "ModelError"
    assert caught.value.response["OriginalStatusCode"] == 400


def test_delete_endpoint_config_and_model(endpoint: Endpoint) -> None:
    name = endpoint.endpoint_name
    endpoint.delete()
    endpoint.wait_for_delete(timeout=120)
    EndpointConfig.get(endpoint_config_name=name).delete()
    Model.get(model_name=name).delete()
    with pytest.raises(ClientError) as caught:
        Model.get(model_name=name)
    assert caught.value.response["Error"]["Code"] == "ValidationException"
