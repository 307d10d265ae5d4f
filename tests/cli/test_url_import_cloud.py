"""URL import end to end in the local cloud with the real template: the CLI's ``import-url`` invokes
the function through the local Lambda Invoke API, the function streams a zip from an HTTP server on
127.0.0.1 into uploads/, and that object's one S3 event makes the real ingest accept the dataset."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cli.main import main
from localcloud.cloud import LocalCloud, LocalCloudConfig
from localcloud.environment.containerenv import REPO_ROOT
from localcloud.state import write_state_file
from tests.support.polling import wait_until
from tools.sample_data import write_sample_zip


@pytest.fixture(scope="module")
def zip_server(tmp_path_factory):
    archive = write_sample_zip(
        tmp_path_factory.mktemp("data") / "dogImages.zip",
        num_classes=3,
        train_per_class=4,
        valid_per_class=2,
        test_per_class=2,
        image_size=32,
    ).read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/dogImages.zip":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(archive)))
            self.end_headers()
            self.wfile.write(archive)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", archive
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    config = LocalCloudConfig(
        template=REPO_ROOT / "template.yaml",
        state_dir=tmp_path_factory.mktemp("urlcloud"),
        start_sagemaker=False,  # the test stops at ingest; dataset-ready's failures do not matter here
        retry_delays_s=(0.05,),
        parameter_overrides={"UrlImportAllowLoopbackHttp": "true", "LogLevel": "WARNING"},
    )
    with LocalCloud(config) as running:
        yield running


def wait_for_subject(cloud, starts_with, timeout_s=120.0):
    seen = []

    def matching():
        seen.extend(cloud.read_notifications())
        return next((note for note in seen if note["subject"].startswith(starts_with)), None), list(seen)

    note, _ = wait_until(
        matching,
        lambda found: found[0] is not None,
        timeout_s=timeout_s,
        what=f"a {starts_with!r} notification",
    )
    return note, seen[: seen.index(note) + 1]


def test_cli_import_url_feeds_ingest_through_one_s3_event(cloud, zip_server, tmp_path, monkeypatch, capsys):
    base_url, archive = zip_server
    state_file = write_state_file(cloud, cloud.state_dir)
    for name, value in json.loads(state_file.read_text())["environment"].items():
        monkeypatch.setenv(name, value)  # the CLI sets these; monkeypatch restores them

    code = main(
        ["import-url", f"{base_url}/dogImages.zip", "--name", "dogs", "--state-file", str(state_file)]
    )

    out = capsys.readouterr()
    assert code == 0, out.err
    bucket = cloud.outputs()["DatasetBucketName"]
    assert f"s3://{bucket}/uploads/dogs.zip" in out.out
    assert cloud.client("s3").get_object(Bucket=bucket, Key="uploads/dogs.zip")["Body"].read() == archive
    note, _ = wait_for_subject(cloud, "Dataset accepted")
    report = json.loads(note["message"])
    assert report["images"] == {"train": 12, "valid": 6, "test": 6}
    # Ingest notifies before its last write: wait for its invocation to end before reading the records.
    assert cloud.wait_s3_events_delivered(120)
    ingests = [
        record
        for record in cloud.runner.records
        if record.function == cloud.runner.function("IngestFunction").name
        and record.summary.endswith("/uploads/dogs.zip")
    ]
    assert [(r.summary.split(" ")[0], r.attempt, r.ok) for r in ingests] == [
        ("ObjectCreated:CompleteMultipartUpload", 1, True)
    ]


def test_a_rejected_import_is_returned_and_notified_not_retried(cloud, zip_server):
    base_url, _ = zip_server
    function = cloud.outputs()["ImportUrlFunctionName"]
    response = cloud.client("lambda").invoke(
        FunctionName=function, Payload=json.dumps({"url": f"{base_url}/missing.zip", "name": "gone"}).encode()
    )
    assert "FunctionError" not in response
    result = json.loads(response["Payload"].read())
    assert result["status"] == "rejected" and "HTTP 404" in result["reason"]
    note, _ = wait_for_subject(cloud, "URL import rejected: gone")
    assert "HTTP 404" in json.loads(note["message"])["reason"]
    bucket = cloud.outputs()["DatasetBucketName"]
    assert "Contents" not in cloud.client("s3").list_objects_v2(Bucket=bucket, Prefix="uploads/gone")
