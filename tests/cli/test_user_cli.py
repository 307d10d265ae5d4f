"""The user CLI: help on every command, clear errors, and an upload against a local cloud."""

import json
import textwrap

import pytest

from cli.main import main
from localcloud.cloud import LocalCloud, LocalCloudConfig
from localcloud.state import write_state_file


@pytest.mark.parametrize(
    "command", [[], ["upload"], ["status"], ["classify"], ["report"], ["teardown"], ["import-url"]]
)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m cli")
    if command:
        assert "--local" in out and "--stack" in out


def test_missing_state_file_is_a_clear_error(tmp_path, capsys):
    assert main(["--local", "--state-file", str(tmp_path / "nope.json"), "status"]) == 1
    assert "not found" in capsys.readouterr().err


def test_upload_refuses_what_ingest_would_ignore(tmp_path, capsys):
    text_file = tmp_path / "data.tar"
    text_file.write_bytes(b"x")
    assert main(["upload", str(text_file), "--bucket", "b", "--region", "us-east-1"]) == 1
    assert ".zip" in capsys.readouterr().err


def test_classify_refuses_non_images(tmp_path, capsys):
    path = tmp_path / "notes.txt"
    path.write_text("x")
    assert main(["classify", str(path), "--endpoint", "e", "--region", "us-east-1"]) == 1
    assert "images" in capsys.readouterr().err


def test_upload_lands_in_the_local_dataset_bucket(tmp_path, monkeypatch, capsys):
    (tmp_path / "template.yaml").write_text(
        textwrap.dedent(
            """
            Resources:
              Data: {Type: AWS::S3::Bucket}
            Outputs:
              DatasetBucketName: {Value: !Ref Data}
            """
        )
    )
    config = LocalCloudConfig(
        template=tmp_path / "template.yaml",
        state_dir=tmp_path / "state",
        stack_name="cli",
        start_sagemaker=False,
    )
    with LocalCloud(config) as cloud:
        state_file = write_state_file(cloud, tmp_path / "state")
        for name, value in json.loads(state_file.read_text())["environment"].items():
            monkeypatch.setenv(name, value)  # the CLI sets these; monkeypatch restores them
        archive = tmp_path / "my data.zip"
        archive.write_bytes(b"PK\x05\x06" + b"\0" * 18)
        assert main(["upload", str(archive), "--state-file", str(state_file)]) == 0
        assert "s3://cli-data/uploads/my data.zip" in capsys.readouterr().out
        body = cloud.client("s3").get_object(Bucket="cli-data", Key="uploads/my data.zip")["Body"].read()
        assert body == archive.read_bytes()
