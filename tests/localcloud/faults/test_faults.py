"""The fault-injection layer (localcloud.faults.spec, localcloud.faults.s3_proxy): each fault at its
configured rate with a fixed seed, counted; a killed invocation retried; a duplicate delivery, one outcome."""

from __future__ import annotations

import json
import random
import threading
import uuid

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from localcloud.cloud import LocalCloud, LocalCloudConfig
from localcloud.environment.containerenv import REPO_ROOT
from localcloud.events.routing import EventRouter
from localcloud.faults.s3_proxy import S3FaultProxy
from localcloud.faults.spec import FaultInjector, FaultSpec, LambdaKill, TrainingJobFault
from localcloud.lambdas.runner import FunctionSpec, LambdaRunner, base_lambda_environment
from localcloud.stack.resources import EventBridgeSubscription
from tests.support.fixtures import fixture_text
from tools.sample_data import write_sample_zip


def test_spec_comes_from_json_and_refuses_what_it_does_not_know():
    spec = FaultSpec.from_json(
        json.dumps(
            {
                "seed": 3,
                "s3_throttle_fraction": 0.1,
                "fail_training_jobs": [{"pattern": "*-train-*", "nth": 2}],
                "kill_lambda": [{"function": "ClassifyFunction", "nth": 4}],
                "rollback_endpoint_updates": [1],
            }
        )
    )
    assert spec.fail_training_jobs == (TrainingJobFault("*-train-*", 2),)
    assert spec.kill_lambda == (LambdaKill("ClassifyFunction", 4),)
    assert spec.rollback_endpoint_updates == (1,)
    with pytest.raises(ValueError, match="unknown fault settings: s3_fraction"):
        FaultSpec.from_json('{"s3_fraction": 0.1}')
    with pytest.raises(ValueError, match="between 0 and 1"):
        FaultSpec(duplicate_s3_fraction=1.5)
    assert FaultSpec.from_env({}) is None  # off by default


def test_sagemaker_faults_hit_the_nth_match_only():
    injector = FaultInjector(
        FaultSpec(
            fail_training_jobs=(TrainingJobFault("p-train-*", 2),),
            fail_endpoint_creates=(1,),
            rollback_endpoint_updates=(2,),
        )
    )
    reasons = [injector.training_failure(name) for name in ("p-hpo-1", "p-train-a", "p-train-b", "p-train-c")]
    assert [reason is not None for reason in reasons] == [False, False, True, False]
    assert reasons[2] is not None and reasons[2].startswith("AlgorithmError: ")
    assert [injector.endpoint_fault("create") for _ in range(2)] == ["fail", None]
    assert [injector.endpoint_fault("update") for _ in range(3)] == [None, "rollback", None]
    assert injector.counts() == {
        "endpoint_create_failed": 1,
        "endpoint_update_rolled_back": 1,
        "training_job_failed": 1,
    }


@pytest.fixture(scope="module")
def moto_url():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def s3_client(url: str, read_timeout: float = 10.0):
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}, read_timeout=read_timeout),
    )


def test_s3_proxy_throttles_the_seeded_fraction_without_forwarding_it(moto_url):
    bucket = f"throttle-{uuid.uuid4().hex[:8]}"
    s3_client(moto_url).create_bucket(Bucket=bucket)
    injector = FaultInjector(FaultSpec(seed=5, s3_throttle_fraction=0.3))
    proxy = S3FaultProxy(moto_url, injector).start()
    try:
        client = s3_client(proxy.url)
        codes = []
        for n in range(100):
            try:
                client.put_object(Bucket=bucket, Key=f"k{n}", Body=b"x" * n)
                codes.append("ok")
            except botocore.exceptions.ClientError as error:
                codes.append(error.response["Error"]["Code"])
    finally:
        proxy.stop()
    clean = S3FaultProxy(moto_url, FaultInjector(FaultSpec())).start()  # no faults: a plain relay
    try:
        head = s3_client(clean.url).head_object(Bucket=bucket, Key=f"k{codes.index('ok')}")
    finally:
        clean.stop()
    draws = random.Random("5:s3")
    expected = sum(draws.random() < 0.3 for _ in range(100))
    assert codes.count("SlowDown") == expected == injector.counts()["s3_throttle"]
    assert set(codes) == {"ok", "SlowDown"}
    assert head["ContentLength"] == codes.index("ok")
    stored = s3_client(moto_url).list_objects_v2(Bucket=bucket).get("KeyCount", 0)
    assert stored == 100 - expected  # a throttled PUT never reached S3


def test_s3_proxy_stalls_past_the_read_timeout(moto_url):
    bucket = f"stall-{uuid.uuid4().hex[:8]}"
    s3_client(moto_url).create_bucket(Bucket=bucket)
    spec = FaultSpec(s3_timeout_fraction=1.0, s3_stall_s=1.5, function_read_timeout_s=0.5)
    injector = FaultInjector(spec)
    assert injector.function_environment() == {"BOTO_READ_TIMEOUT_SECONDS": "0.5"}
    proxy = S3FaultProxy(moto_url, injector).start()
    try:
        with pytest.raises(botocore.exceptions.ReadTimeoutError):
            s3_client(proxy.url, read_timeout=0.5).put_object(Bucket=bucket, Key="k", Body=b"x")
    finally:
        proxy.stop()
    assert injector.counts() == {"s3_timeout": 1}
    assert s3_client(moto_url).list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


HANDLERS = fixture_text("lambdas/faults_handlers.py")


def make_spec(tmp_path, name: str = "fn-slow") -> FunctionSpec:
    code_dir = tmp_path / "code"
    code_dir.mkdir(exist_ok=True)
    (code_dir / "handlers.py").write_text(HANDLERS)
    arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
    environment = base_lambda_environment(name, arn, 128, 10.0, "us-east-1")
    environment["MARKER_DIR"] = str(tmp_path)
    return FunctionSpec(
        logical_id="SlowFunction",
        name=name,
        arn=arn,
        handler="handlers.slow",
        code_dir=code_dir,
        environment=environment,
        timeout_s=10.0,
    )


def test_a_killed_invocation_is_retried_and_the_retry_succeeds(tmp_path):
    injector = FaultInjector(FaultSpec(kill_lambda=(LambdaKill("SlowFunction", nth=1, delay_s=0.3),)))
    delivered: list[object] = []
    runner = LambdaRunner(
        {"fn-slow": make_spec(tmp_path)},
        log_dir=tmp_path / "logs",
        send_to_destination=lambda destination, record: delivered.append(record),
        retry_delays_s=(0.05,),
        faults=injector,
    )
    try:
        # Attempt 1 runs in a cold sandbox (init first): never armed. Attempt 2, warm, is killed.
        assert runner.invoke("fn-slow", {"id": "warm-up"}) == {"attempt": 1, "id": "warm-up"}
        assert runner.invoke_async("fn-slow", {"id": "e1"}).result(timeout=60) is True
    finally:
        runner.close()
    _, killed, retry = runner.records
    assert (killed.ok, killed.payload["errorType"]) == (False, "Runtime.ExitError")
    assert "-9" in killed.payload["errorMessage"]  # SIGKILL
    assert (retry.ok, retry.payload) == (True, {"attempt": 3, "id": "e1"})
    assert killed.request_id == retry.request_id  # the same event's retry
    assert injector.counts() == {"lambda_killed": 1}
    assert runner.failed_async == [] and delivered == []


def test_duplicate_eventbridge_delivery_is_the_same_event_twice(tmp_path):
    injector = FaultInjector(FaultSpec(seed=1, duplicate_eventbridge_fraction=1.0))
    runner = LambdaRunner(
        {"fn-slow": make_spec(tmp_path)},
        log_dir=tmp_path / "logs",
        send_to_destination=lambda destination, record: None,
        retry_delays_s=(0.05,),
    )
    router = EventRouter("us-east-1", lambda service: None, lambda: runner, threading.Event())
    router.faults = injector
    router.eventbridge_subscriptions = [EventBridgeSubscription("fn-slow", "Rule", {"source": ["test"]})]
    try:
        assert router.put_event({"source": "test", "detail-type": "x", "detail": {}}) == ["fn-slow"]
        assert runner.wait_idle(60)
    finally:
        runner.close()
    assert all(record.ok for record in runner.records), [record.payload for record in runner.records]
    ids = [record.payload["id"] for record in runner.records]
    assert len(ids) == 2 and ids[0] == ids[1]  # a duplicate keeps the event id, as EventBridge's do
    assert injector.counts() == {"duplicate_eventbridge": 1}


def test_a_duplicated_s3_event_ingests_the_dataset_once(tmp_path):
    """Every S3 notification delivered twice: ingest runs twice per upload, the dataset is ingested
    once (one report, one "accepted" notification), as the idempotent handler promises."""
    config = LocalCloudConfig(
        template=REPO_ROOT / "template.yaml",
        state_dir=tmp_path / "state",
        start_sagemaker=False,
        retry_delays_s=(0.05,),
        parameter_overrides={"LogLevel": "WARNING"},
        faults=FaultSpec(duplicate_s3_fraction=1.0),
    )
    archive = write_sample_zip(
        tmp_path / "dup.zip",
        num_classes=2,
        train_per_class=2,
        valid_per_class=1,
        test_per_class=1,
        image_size=16,
    )
    with LocalCloud(config) as cloud:
        bucket = cloud.outputs()["DatasetBucketName"]
        s3 = cloud.client("s3")
        s3.upload_file(str(archive), bucket, "uploads/dup.zip")
        assert cloud.wait_s3_events_delivered(timeout_s=120)
        assert cloud.runner is not None
        ingests = [
            r
            for r in cloud.runner.records
            if r.function.endswith("IngestFunction") or "ingest" in r.function.lower()
        ]
        reports = [
            item["Key"]
            for item in s3.list_objects_v2(Bucket=bucket, Prefix="datasets/").get("Contents", [])
            if item["Key"].endswith("/report.json")
        ]
        accepted = [n for n in cloud.read_notifications() if n["subject"].startswith("Dataset accepted")]
    assert len({r.request_id for r in ingests}) == 2  # two deliveries of the one upload
    assert len(reports) == 1
    assert len(accepted) == 1


def test_an_injected_training_failure_fails_the_job_as_sagemaker_reports_it(tmp_path):
    from localcloud.sagemaker.server import SageMakerServer
    from tests.support.sagemaker import EventLog, client, local_s3, tar_gz, training_job_request

    injector = FaultInjector(FaultSpec(fail_training_jobs=(TrainingJobFault("p-train-*", 1),)))
    events = EventLog()
    with local_s3() as s3_url:
        s3 = client("s3", s3_url)
        s3.create_bucket(Bucket="jobs")
        s3.put_object(
            Bucket="jobs", Key="code/source.tar.gz", Body=tar_gz({"train.py": "raise SystemExit(0)"})
        )
        s3.put_object(Bucket="jobs", Key="data/train/a.txt", Body=b"x")
        server = SageMakerServer(
            state_dir=tmp_path / "sagemaker",
            s3_endpoint_url=s3_url,
            on_event=events,
            faults=injector,
            serverless_endpoint_events=True,  # an account that sends them: this test reads them
        ).start()
        try:
            sm = client("sagemaker", server.url)
            request = training_job_request(
                "p-train-1",
                "jobs",
                "s3://jobs/code/source.tar.gz",
                channels={"train": "s3://jobs/data/train/"},
            )
            sm.create_training_job(**request)
            waiter = sm.get_waiter("training_job_completed_or_stopped")
            with pytest.raises(botocore.exceptions.WaiterError):  # the waiter fails on Failed
                waiter.wait(TrainingJobName="p-train-1", WaiterConfig={"Delay": 1, "MaxAttempts": 60})
            description = sm.describe_training_job(TrainingJobName="p-train-1")
            server.wait_for_events()
        finally:
            server.stop()
    assert description["TrainingJobStatus"] == "Failed"
    assert description["FailureReason"].startswith("AlgorithmError: injected fault")
    last = events.of("SageMaker Training Job State Change", "TrainingJobName", "p-train-1")[-1]
    assert last["detail"]["TrainingJobStatus"] == "Failed"
    assert injector.counts() == {"training_job_failed": 1}


def test_an_injected_create_failure_fails_the_endpoint_with_its_reason(tmp_path):
    from localcloud.sagemaker.server import SageMakerServer
    from tests.support.sagemaker import EventLog, client, local_s3

    injector = FaultInjector(FaultSpec(fail_endpoint_creates=(1,)))
    events = EventLog()
    with local_s3() as s3_url:
        server = SageMakerServer(
            state_dir=tmp_path / "sagemaker",
            s3_endpoint_url=s3_url,
            on_event=events,
            faults=injector,
            serverless_endpoint_events=True,  # an account that sends them: this test reads them
        ).start()
        try:
            sm = client("sagemaker", server.url)
            sm.create_model(
                ModelName="m1",
                ExecutionRoleArn="arn:aws:iam::123456789012:role/r",
                PrimaryContainer={"Image": "img", "ModelDataUrl": "s3://b/model.tar.gz"},
            )
            variant = {
                "VariantName": "AllTraffic",
                "ModelName": "m1",
                "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 1},
            }
            sm.create_endpoint_config(EndpointConfigName="c1", ProductionVariants=[variant])
            sm.create_endpoint(EndpointName="ep", EndpointConfigName="c1")
            with pytest.raises(botocore.exceptions.WaiterError):
                sm.get_waiter("endpoint_in_service").wait(
                    EndpointName="ep", WaiterConfig={"Delay": 1, "MaxAttempts": 60}
                )
            description = sm.describe_endpoint(EndpointName="ep")
            server.wait_for_events()
        finally:
            server.stop()
    assert description["EndpointStatus"] == "Failed"
    assert "injected fault" in description["FailureReason"]
    statuses = [
        e["detail"]["EndpointStatus"]
        for e in events.of("SageMaker Endpoint State Change", "EndpointName", "ep")
    ]
    assert statuses == ["CREATING", "FAILED"]
    assert injector.counts() == {"endpoint_create_failed": 1}
