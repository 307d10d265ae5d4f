"""Endpoints through AWS's serving stack: boto3 sagemaker-runtime -> emulator -> TorchServe -> inference.py.

Every endpoint runs TorchServe with sagemaker-inference's handler service in the base env (the
inference image), serving a small real dogclf model (ResNet18 head on 32 px, 3 classes, random
weights) with training/inference.py as its code/, as training ships it.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import struct
import subprocess
import threading
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from botocore.exceptions import ClientError
from PIL import Image

from localcloud.environment.containerenv import REPO_ROOT, base_python
from localcloud.sagemaker.server import SageMakerServer
from tests.support.fixtures import fixture_text
from tests.support.sagemaker import ROLE_ARN, EventLog, client, local_s3, tar_gz_directory

pytestmark = pytest.mark.slow  # starts TorchServe

BUCKET = "models"
CLASSES = ("a", "b", "c")

# Writes a model dir the way training's save_artifacts does (model.pth, classes.json,
# model_meta.json, code/ with inference.py and dogclf/), without training: weights are random.
BUILD_MODEL = fixture_text("sagemaker/build_model.py")


def build_model(directory: Path, classes: list[str]) -> Path:
    training = REPO_ROOT / "training"
    subprocess.run(
        [str(base_python()), "-c", BUILD_MODEL, str(training), str(directory), json.dumps(classes)],
        check=True,
        timeout=300,
    )
    return directory


def image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (48, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (180, 90, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A 69-byte PNG whose header claims width x height (pixel data cut short): a decompression-bomb probe."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(64)))
        + chunk(b"IEND", b"")
    )


def serving_processes(state_dir: Path) -> list[str]:
    """Live processes (not zombies) whose command line or working directory lies in `state_dir`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            stat = (entry / "stat").read_text()
            if stat[stat.rfind(")") + 2 :].split()[0] == "Z":
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = str((entry / "cwd").readlink())
        except OSError:
            continue
        if str(state_dir) in cmdline or cwd.startswith(str(state_dir)):
            found.append(f"{entry.name}: {cmdline}")
    return found


PROBE_PACKAGE, PROBE_VERSION, PROBE_PROGRAM = "localcloud_probe", "0.1", "probe_inference.py"


def ship_probe_requirements(code: Path) -> None:
    """code/wheels/<a one-module wheel>, code/requirements.txt installing it with no index (pip reads
    ``--find-links wheels`` relative to the file), and a program importing it before inference.py."""
    dist_info = f"{PROBE_PACKAGE}-{PROBE_VERSION}.dist-info"
    members = {
        f"{PROBE_PACKAGE}/__init__.py": "SOURCE = 'code/requirements.txt'\n",
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {PROBE_PACKAGE}\nVersion: {PROBE_VERSION}\n",
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    members[f"{dist_info}/RECORD"] = "".join(f"{name},,\n" for name in [*members, f"{dist_info}/RECORD"])
    (code / "wheels").mkdir()
    with zipfile.ZipFile(code / "wheels" / f"{PROBE_PACKAGE}-{PROBE_VERSION}-py3-none-any.whl", "w") as wheel:
        for name, text in members.items():
            wheel.writestr(name, text)
    (code / "requirements.txt").write_text(
        f"--no-index\n--find-links wheels\n{PROBE_PACKAGE}=={PROBE_VERSION}\n"
    )
    (code / PROBE_PROGRAM).write_text(
        f"import {PROBE_PACKAGE}  # noqa: F401  (fails unless code/requirements.txt was installed)\n"
        "from inference import input_fn, model_fn, output_fn, predict_fn  # noqa: F401\n"
    )


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    models = tmp_path_factory.mktemp("models")
    v1 = build_model(models / "v1", [f"v1-{name}" for name in CLASSES])
    v2 = build_model(models / "v2", [f"v2-{name}" for name in CLASSES])
    state_dir = tmp_path_factory.mktemp("sagemaker")
    events = EventLog()
    with local_s3() as s3_url:
        s3 = client("s3", s3_url)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="v1/model.tar.gz", Body=tar_gz_directory(v1))
        s3.put_object(Bucket=BUCKET, Key="v2/model.tar.gz", Body=tar_gz_directory(v2))
        # A truncated/corrupt checkpoint: model_fn's torch.load fails inside TorchServe's worker.
        (v1 / "model.pth").write_bytes(b"not a torch checkpoint")
        s3.put_object(Bucket=BUCKET, Key="bad/model.tar.gz", Body=tar_gz_directory(v1))
        # A model whose code/ ships requirements.txt (no index, its wheel next to it) and a program
        # that imports the package: it serves only if the install reached the worker's interpreter.
        ship_probe_requirements(v2 / "code")
        s3.put_object(Bucket=BUCKET, Key="reqs/model.tar.gz", Body=tar_gz_directory(v2))
        server = SageMakerServer(state_dir=state_dir, s3_endpoint_url=s3_url, on_event=events).start()
        sm = client("sagemaker", server.url)
        for name in ("v1", "v2", "bad", "reqs"):
            program = PROBE_PROGRAM if name == "reqs" else "inference.py"
            sm.create_model(
                ModelName=f"model-{name}",
                ExecutionRoleArn=ROLE_ARN,
                PrimaryContainer={
                    "Image": "pytorch-inference:local",
                    "ModelDataUrl": f"s3://{BUCKET}/{name}/model.tar.gz",
                    "Environment": {"SAGEMAKER_PROGRAM": program},
                },
            )
            sm.create_endpoint_config(
                EndpointConfigName=f"config-{name}",
                ProductionVariants=[
                    {
                        "VariantName": "AllTraffic",
                        "ModelName": f"model-{name}",
                        "InstanceType": "ml.m5.large",
                        "InitialInstanceCount": 1,
                    }
                ],
            )
        for name in ("v1", "v2", "bad"):
            sm.create_endpoint_config(
                EndpointConfigName=f"config-{name}-serverless",
                ProductionVariants=[
                    {
                        "VariantName": "Serverless",
                        "ModelName": f"model-{name}",
                        "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
                    }
                ],
            )
        try:
            yield {
                "sm": sm,
                "runtime": client("sagemaker-runtime", server.url),
                "events": events,
                "server": server,
                "state_dir": state_dir,
            }
        finally:
            server.stop()
    # Stopping the emulator stops every endpoint: no JVM, worker or launcher may outlive it.
    assert serving_processes(state_dir) == []


def wait_in_service(sm: Any, name: str) -> dict[str, Any]:
    waiter = sm.get_waiter("endpoint_in_service")
    waiter.wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 180})
    return sm.describe_endpoint(EndpointName=name)


def invoke(
    runtime: Any,
    name: str,
    body: bytes,
    content_type: str = "image/jpeg",
    accept: str = "application/json",
) -> dict[str, Any]:
    response = runtime.invoke_endpoint(EndpointName=name, Body=body, ContentType=content_type, Accept=accept)
    assert response["ContentType"] == "application/json"
    return {**json.loads(response["Body"].read()), "_variant": response["InvokedProductionVariant"]}


def model_error(
    runtime: Any, name: str, body: bytes, content_type: str, accept: str = "application/json"
) -> tuple[int, dict[str, Any]]:
    """(original status, the model's JSON error body) of a request the model refuses."""
    with pytest.raises(runtime.exceptions.ModelError) as caught:
        runtime.invoke_endpoint(EndpointName=name, Body=body, ContentType=content_type, Accept=accept)
    response = caught.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert response["Error"]["Code"] == "ModelError"
    message = response["OriginalMessage"]
    assert "Traceback" not in message
    return response["OriginalStatusCode"], json.loads(message)


def assert_prediction(payload: dict[str, Any], prefix: str, top_k: int = 3) -> None:
    predictions = payload["predictions"]
    assert len(predictions) == top_k
    assert {p["label"] for p in predictions} <= {f"{prefix}-{name}" for name in CLASSES}
    probabilities = [p["probability"] for p in predictions]
    assert probabilities == sorted(probabilities, reverse=True)
    assert 0 < sum(probabilities) <= 1 + 1e-6
    assert payload["label"] == predictions[0]["label"]
    assert CLASSES[payload["class_index"]] == payload["label"].split("-", 1)[1]


def test_valid_requests_are_answered_by_torchserve(cloud: dict[str, Any]) -> None:
    sm, runtime = cloud["sm"], cloud["runtime"]
    sm.create_endpoint(EndpointName="ep-basic", EndpointConfigName="config-v1")
    desc = wait_in_service(sm, "ep-basic")
    assert desc["ProductionVariants"][0]["CurrentInstanceCount"] == 1

    jpeg = image_bytes("JPEG")
    answer = invoke(runtime, "ep-basic", jpeg)
    assert answer["_variant"] == "AllTraffic"
    assert_prediction(answer, "v1")
    assert_prediction(invoke(runtime, "ep-basic", image_bytes("PNG"), "image/png"), "v1")
    assert_prediction(invoke(runtime, "ep-basic", jpeg, "application/x-image"), "v1")
    body = json.dumps({"image": base64.b64encode(jpeg).decode(), "top_k": 2}).encode()
    assert_prediction(invoke(runtime, "ep-basic", body, "application/json"), "v1", top_k=2)
    # TorchServe's JVM runs with this generation's config, temp dir and loopback-only addresses.
    base = cloud["state_dir"] / "endpoints" / "ep-basic" / "gen-1"
    [jvm] = [line for line in serving_processes(base) if "org.pytorch.serve.ModelServer" in line]
    assert f"-f {base / 'sagemaker-ts.properties'}" in jvm
    # The JVM's temp dir holds the workers' Unix sockets: short enough for any endpoint name.
    [jvm_tmp] = re.findall(r"-Djava\.io\.tmpdir=(\S+)", jvm)
    assert Path(jvm_tmp).is_dir() and len(jvm_tmp) + len("/.ts.sock.9000") < 108
    properties = (base / "sagemaker-ts.properties").read_text()
    assert "127.0.0.1" in properties and "0.0.0.0" not in properties
    # Several Accept types, with and without q-values: JSON is among the acceptable ones.
    for accept in ("application/json, text/plain", "text/plain;q=1.0, application/json;q=0.5", "*/*"):
        assert_prediction(invoke(runtime, "ep-basic", jpeg, accept=accept), "v1")


ERROR_TYPES = {400: "InvalidInputError", 415: "UnsupportedContentTypeError", 406: "UnsupportedAcceptError"}
JPEG, JSON = "image/jpeg", "application/json"


NOT_IMAGE, EMPTY, BAD_TYPE, BAD_ACCEPT = (
    "not a decodable image",
    "empty request body",
    "unsupported content type",
    "unsupported accept type",
)


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status", "match"),
    [
        pytest.param(b"definitely not an image", JPEG, JSON, 400, NOT_IMAGE, id="not-image"),
        pytest.param(image_bytes("JPEG")[:200], JPEG, JSON, 400, NOT_IMAGE, id="truncated"),
        pytest.param(png_header(30000, 30000), "image/png", JSON, 400, "decompression bomb", id="bomb"),
        pytest.param(b"", JPEG, JSON, 400, EMPTY, id="empty-image"),
        pytest.param(b"", JSON, JSON, 400, EMPTY, id="empty-json"),
        pytest.param(b"{nope", JSON, JSON, 400, "malformed JSON", id="bad-json"),
        pytest.param(b'{"image": "@@@"}', JSON, JSON, 400, "not base64", id="bad-base64"),
        pytest.param(b'{"img": "x"}', JSON, JSON, 400, 'field "image"', id="no-image-field"),
        # The toolkit UTF-8-decodes application/json bodies itself unless inference.py stops it.
        pytest.param(b"\xff\xfe{", JSON, JSON, 400, "not UTF-8", id="json-not-utf8"),
        pytest.param(b"1,2,3", "text/csv", JSON, 415, BAD_TYPE, id="csv"),
        pytest.param(b"\xff\xfe", "text/csv", JSON, 415, BAD_TYPE, id="csv-not-utf8"),
        pytest.param(image_bytes("JPEG"), JPEG, "text/html", 406, BAD_ACCEPT, id="accept"),
        pytest.param(image_bytes("JPEG"), JPEG, "application/json;q=0, text/plain", 406, BAD_ACCEPT, id="q0"),
    ],
)
def test_bad_requests_get_4xx_json_not_a_traceback(
    cloud: dict[str, Any], body: bytes, content_type: str, accept: str, status: int, match: str
) -> None:
    wait_in_service(cloud["sm"], "ep-basic")  # created by the first test
    original_status, answer = model_error(cloud["runtime"], "ep-basic", body, content_type, accept)
    assert (original_status, answer["error"]) == (status, ERROR_TYPES[status])
    assert set(answer) == {"error", "message"} and match in answer["message"]


def test_server_keeps_serving_after_bad_requests(cloud: dict[str, Any]) -> None:
    wait_in_service(cloud["sm"], "ep-basic")
    assert_prediction(invoke(cloud["runtime"], "ep-basic", image_bytes("JPEG")), "v1")


def test_update_switches_models_without_dropping_requests(cloud: dict[str, Any]) -> None:
    sm, runtime = cloud["sm"], cloud["runtime"]
    sm.create_endpoint(EndpointName="ep-live", EndpointConfigName="config-v1-serverless")
    wait_in_service(sm, "ep-live")
    jpeg = image_bytes("JPEG")

    workers = 3
    stop = threading.Event()
    results: list[list[str]] = [[] for _ in range(workers)]
    failures: list[BaseException] = []
    progress = threading.Condition()

    def hammer(slot: int) -> None:
        worker_runtime = client("sagemaker-runtime", cloud["server"].url)
        while not stop.is_set():
            try:
                version = invoke(worker_runtime, "ep-live", jpeg)["label"].split("-")[0]
            except Exception as error:  # any failure is a dropped request
                failures.append(error)
                version = "failed"
            with progress:
                results[slot].append(version)
                progress.notify_all()

    def every_worker_saw(version: str) -> bool:
        return all(version in seen for seen in results) or bool(failures)

    threads = [threading.Thread(target=hammer, args=(slot,)) for slot in range(workers)]
    for thread in threads:
        thread.start()
    try:
        with progress:
            assert progress.wait_for(lambda: every_worker_saw("v1"), timeout=120)
        sm.update_endpoint(EndpointName="ep-live", EndpointConfigName="config-v2-serverless")
        assert sm.describe_endpoint(EndpointName="ep-live")["EndpointStatus"] == "Updating"
        desc = wait_in_service(sm, "ep-live")
        with progress:
            assert progress.wait_for(lambda: every_worker_saw("v2"), timeout=120)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)

    assert failures == []
    assert desc["EndpointConfigName"] == "config-v2-serverless"
    assert desc["ProductionVariants"][0]["CurrentServerlessConfig"]["MaxConcurrency"] == 5
    for versions in results:
        assert versions[0] == "v1" and versions[-1] == "v2"
        assert versions == sorted(versions)  # once switched, never back to the old model

    # A failing update rolls back: still InService on the old config, FailureReason says why.
    sm.update_endpoint(EndpointName="ep-live", EndpointConfigName="config-bad-serverless")
    desc = wait_in_service(sm, "ep-live")
    assert desc["EndpointStatus"] == "InService"
    assert desc["EndpointConfigName"] == "config-v2-serverless"
    assert "Update failed, rolled back" in desc["FailureReason"]
    assert "UnpicklingError" in desc["FailureReason"]
    assert invoke(runtime, "ep-live", jpeg)["label"].startswith("v2-")


@pytest.mark.parametrize(
    ("endpoint", "limit"),
    [
        pytest.param("ep-basic", 6 * 1024 * 1024, id="instance-6MB"),
        pytest.param("ep-live", 4 * 1024 * 1024, id="serverless-4MB"),  # created by the update test
    ],
)
def test_payload_over_the_endpoint_types_limit_is_refused_before_the_model(
    cloud: dict[str, Any], endpoint: str, limit: int
) -> None:
    """AWS refuses InvokeEndpoint bodies over 6 MB (4 MB on serverless endpoints) with a
    ValidationError; the model never sees them. A body at the limit still reaches the model (which
    answers 400 for these non-image bytes)."""
    runtime = cloud["runtime"]
    wait_in_service(cloud["sm"], endpoint)
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint(EndpointName=endpoint, Body=b"\0" * (limit + 1), ContentType="image/jpeg")
    assert caught.value.response["Error"]["Code"] == "ValidationError"
    assert f"{limit // (1024 * 1024)} MB" in caught.value.response["Error"]["Message"]
    status, _ = model_error(runtime, endpoint, b"\0" * limit, "image/jpeg")
    assert status == 400


def test_an_update_between_serverless_and_instance_configs_is_refused(cloud: dict[str, Any]) -> None:
    """AWS: updating a real-time endpoint to serverless "is currently not supported"; the emulator
    refuses both directions before touching the endpoint, which keeps serving its model."""
    sm = cloud["sm"]
    for endpoint, config in (("ep-live", "config-v1"), ("ep-basic", "config-v2-serverless")):
        before = wait_in_service(sm, endpoint)
        with pytest.raises(ClientError) as caught:
            sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=config)
        assert caught.value.response["Error"]["Code"] == "ValidationException"
        assert "not supported" in caught.value.response["Error"]["Message"]
        after = sm.describe_endpoint(EndpointName=endpoint)
        assert (after["EndpointStatus"], after["EndpointConfigName"]) == (
            "InService",
            before["EndpointConfigName"],
        )


def test_endpoint_that_cannot_load_its_model_fails(cloud: dict[str, Any]) -> None:
    sm = cloud["sm"]
    sm.create_endpoint(EndpointName="ep-broken", EndpointConfigName="config-bad")
    with pytest.raises(botocore.exceptions.WaiterError):
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName="ep-broken", WaiterConfig={"Delay": 1, "MaxAttempts": 180}
        )
    desc = sm.describe_endpoint(EndpointName="ep-broken")
    assert desc["EndpointStatus"] == "Failed"
    # The model's own error, as TorchServe's worker logged it.
    assert "UnpicklingError" in desc["FailureReason"]


# As the SageMaker Python SDK names endpoints: long enough that TorchServe's worker sockets would
# overflow the 107-byte Unix socket path limit under the endpoint's own folder (endpoints.py).
LONG_ENDPOINT_NAME = "pytorch-inference-2026-12-07-04-02-53-816-with-requirements"


def test_model_with_requirements_is_served_from_an_overlay_never_the_base(cloud: dict[str, Any]) -> None:
    """As the inference toolkit does, code/requirements.txt is installed before the server starts:
    here into a cached overlay over the base (localcloud/environment/containerenv.py), never into the base."""
    sm, runtime = cloud["sm"], cloud["runtime"]
    sm.create_endpoint(EndpointName=LONG_ENDPOINT_NAME, EndpointConfigName="config-reqs")
    wait_in_service(sm, LONG_ENDPOINT_NAME)
    assert_prediction(invoke(runtime, LONG_ENDPOINT_NAME, image_bytes("JPEG")), "v2")
    log = (cloud["state_dir"] / "endpoints" / LONG_ENDPOINT_NAME / "gen-1" / "server.log").read_text()
    assert "overlay" in log and "requirements.txt" in log
    # The toolkit's own pip run (in the overlay) found the package already there.
    assert f"Requirement already satisfied: {PROBE_PACKAGE}=={PROBE_VERSION}" in log
    base = subprocess.run([str(base_python()), "-c", f"import {PROBE_PACKAGE}"], capture_output=True)
    assert base.returncode != 0  # the base environment is untouched


INSTALL_IN_BASE = fixture_text("sagemaker/install_in_base.py")


def test_launcher_refuses_requirements_in_the_base_environment(tmp_path: Path) -> None:
    """Started in the base interpreter (no overlay), the launcher's install step refuses to pip-install."""
    code = tmp_path / "model" / "code"
    code.mkdir(parents=True)
    (code / "requirements.txt").write_text("nothing-to-install==0\n")
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(tmp_path), "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [str(base_python()), "-c", INSTALL_IN_BASE, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert "LauncherError" in result.stdout and "never pip-installed into" in result.stdout, result.stderr


GENERATE_CONFIG = fixture_text("sagemaker/generate_config.py")


def test_launcher_config_is_the_toolkits_own_bound_to_loopback(tmp_path: Path) -> None:
    """The toolkit generates the config; the launcher fixes the image's newline bug and the addresses."""
    (tmp_path / "model").mkdir()
    env = {
        **os.environ,
        "SAGEMAKER_BASE_DIR": str(tmp_path),
        "SAGEMAKER_BIND_TO_PORT": "18080",
        "PYTHONPATH": str(REPO_ROOT),
    }
    completed = subprocess.run(
        [str(base_python()), "-c", GENERATE_CONFIG, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    config_path, *lines = completed.stdout.splitlines()
    assert config_path == str(tmp_path / "sagemaker-ts.properties")
    assert "enable_model_api=true" in lines  # glued to the next line without the fix
    assert "default_response_timeout=60" in lines
    assert "inference_address=http://127.0.0.1:18080" in lines
    assert "management_address=http://127.0.0.1:18080" in lines
    assert "0.0.0.0" not in completed.stdout
    properties = dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    assert properties["metrics_address"].startswith("http://127.0.0.1:")
    assert properties["grpc_inference_address"] == properties["grpc_management_address"] == "127.0.0.1"
    ports = {
        properties["grpc_inference_port"],
        properties["grpc_management_port"],
        properties["metrics_address"],
    }
    assert "7070" not in ports and "7071" not in ports and len(ports) == 3


def test_delete_endpoint_and_events(cloud: dict[str, Any]) -> None:
    sm, runtime, events, server = cloud["sm"], cloud["runtime"], cloud["events"], cloud["server"]
    sm.create_endpoint(EndpointName="ep-gone", EndpointConfigName="config-v1")
    wait_in_service(sm, "ep-gone")
    with pytest.raises(botocore.exceptions.ClientError) as error:
        sm.create_endpoint(EndpointName="ep-gone", EndpointConfigName="config-v1")
    assert error.value.response["Error"]["Code"] == "ValidationException"
    assert "ep-gone" in [e["EndpointName"] for e in sm.list_endpoints(NameContains="ep-gone")["Endpoints"]]

    sm.delete_endpoint(EndpointName="ep-gone")
    with pytest.raises(botocore.exceptions.ClientError) as error:
        sm.describe_endpoint(EndpointName="ep-gone")
    assert error.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(botocore.exceptions.ClientError) as error:
        runtime.invoke_endpoint(EndpointName="ep-gone", Body=b"{}", ContentType="application/json")
    assert error.value.response["Error"]["Code"] == "ValidationError"

    server.wait_for_events()
    seen = events.of("SageMaker Endpoint State Change", "EndpointName", "ep-gone")
    # Events spell the status as AWS's documented example does (IN_SERVICE), Describe as InService.
    assert [e["detail"]["EndpointStatus"] for e in seen] == ["CREATING", "IN_SERVICE", "DELETING"]
    in_service = seen[1]
    assert in_service["source"] == "aws.sagemaker"
    assert in_service["resources"] == [in_service["detail"]["EndpointArn"]]
    assert in_service["detail"]["EndpointConfigName"] == "config-v1"
    assert in_service["detail"]["ProductionVariants"][0]["VariantName"] == "AllTraffic"
