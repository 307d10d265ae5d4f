"""The commands that start the pipeline: ``upload`` (a local zip) and ``import-url`` (a zip on the web)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cli.target import CliError, Target


def cmd_upload(args: argparse.Namespace, target: Target) -> int:
    path = Path(args.zip)
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    if path.suffix.lower() != ".zip":
        raise CliError(f"{path}: the pipeline ingests .zip archives only")
    bucket = target.need("dataset_bucket", "--bucket")
    name = args.key or path.name
    # The ingest triggers on .zip and .ZIP only (S3 suffix rules are case-sensitive): X.Zip or a bare
    # --key would never fire it.
    stem = name[:-4] if name.lower().endswith(".zip") else name
    key = f"{args.prefix}{stem}.zip"
    target.client("s3").upload_file(str(path), bucket, key)
    print(f"uploaded {path} to s3://{bucket}/{key}; ingest starts from the S3 event")
    return 0


def cmd_import_url(args: argparse.Namespace, target: Target) -> int:
    """Invoke the URL import function: it streams the zip into uploads/<name>.zip, and that object's
    S3 event starts ingest, as an upload would."""
    from botocore.config import Config

    function = args.function or target.need("import_function", "--function")
    event = {"url": args.url, **({"name": args.name} if args.name else {})}
    if args.no_wait:  # Event: Lambda retries transient errors; a rejection is notified on the topic
        target.client("lambda").invoke(
            FunctionName=function, InvocationType="Event", Payload=json.dumps(event).encode()
        )
        print(f"import of {args.url} queued ({function}); `status` shows the pipeline once ingest starts")
        return 0
    # RequestResponse waits for the function (up to its 900 s timeout); no client retries of a download.
    config = Config(read_timeout=960, connect_timeout=10, retries={"max_attempts": 1, "mode": "standard"})
    response = target.session.client("lambda", config=config).invoke(
        FunctionName=function, InvocationType="RequestResponse", Payload=json.dumps(event).encode()
    )
    raw = response["Payload"].read()
    result = json.loads(raw) if raw else {}
    if "FunctionError" in response:
        raise CliError(f"import failed: {result.get('errorType')}: {result.get('errorMessage')} (try again)")
    if result.get("status") != "imported":
        raise CliError(f"import rejected: {result.get('reason', result)}")
    print(
        f"imported {result['bytes']:,} bytes into s3://{result['bucket']}/{result['key']} in "
        f"{result['seconds']} s; ingest starts from its S3 event"
    )
    return 0


def add_upload(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """The ``upload`` command and its flags (``common``: the location flags, repeated after it)."""
    upload = commands.add_parser(
        "upload", parents=[common], help="upload a dataset zip (starts the pipeline)"
    )
    upload.add_argument("zip", help="dataset zip in the dogImages layout")
    upload.add_argument("--prefix", default="uploads/", help="key prefix the ingest function listens on")
    upload.add_argument("--key", help="object name under the prefix (default: the file name)")
    upload.set_defaults(func=cmd_upload)


def add_import_url(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """The ``import-url`` command and its flags (``common``: the location flags, repeated after it)."""
    import_url = commands.add_parser(
        "import-url", parents=[common], help="import a dataset zip from an https:// URL (starts the pipeline)"
    )
    import_url.add_argument("url", help="https:// URL of a zip in the dogImages layout")
    import_url.add_argument("--name", help="dataset name: uploads/<name>.zip (default: from the URL)")
    import_url.add_argument(
        "--function", help="URL import function (default: the ImportUrlFunctionName output)"
    )
    import_url.add_argument(
        "--no-wait", action="store_true", help="queue the import (async invoke, retried) instead of waiting"
    )
    import_url.set_defaults(func=cmd_import_url)
