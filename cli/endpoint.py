"""The commands on the endpoint: ``classify`` (one image, through boto3 or the SageMaker SDK v3) and
``teardown`` (the endpoint, its configs and models; the buckets stay)."""

from __future__ import annotations

import argparse
import json
import mimetypes
from pathlib import Path

from cli.target import CliError, Target


def content_type_of(path: Path) -> str:
    kind = mimetypes.guess_type(path.name)[0]
    if kind not in ("image/jpeg", "image/png"):
        raise CliError(f"{path}: only .jpg, .jpeg and .png images can be classified")
    return kind


def cmd_classify(args: argparse.Namespace, target: Target) -> int:
    path = Path(args.image)
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    endpoint = target.need("endpoint", "--endpoint")
    body, content_type = path.read_bytes(), content_type_of(path)
    if args.via == "boto3":
        response = target.client("sagemaker-runtime").invoke_endpoint(
            EndpointName=endpoint, ContentType=content_type, Accept="application/json", Body=body
        )
        payload = response["Body"].read()
    else:
        payload = classify_with_sdk(target, endpoint, body, content_type)
    try:
        print(json.dumps(json.loads(payload), indent=2))
    except ValueError:
        print(payload.decode(errors="replace"))
    return 0


def classify_with_sdk(target: Target, endpoint_name: str, body: bytes, content_type: str) -> bytes:
    """The SageMaker Python SDK v3 way: sagemaker.core.resources.Endpoint.invoke."""
    from sagemaker.core.resources import Endpoint

    region = target.session.region_name
    endpoint = Endpoint.get(endpoint_name=endpoint_name, session=target.session, region=region)
    output = endpoint.invoke(body=body, content_type=content_type, accept="application/json")
    result = output.body
    return result.read() if hasattr(result, "read") else bytes(result)


def cmd_teardown(args: argparse.Namespace, target: Target) -> int:
    sm = target.client("sagemaker")
    endpoint = target.need("endpoint", "--endpoint")
    prefix = target.job_prefix
    if not args.yes:
        answer = input(f"delete endpoint {endpoint} and every model/endpoint config named {prefix}-*? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    # What the endpoint uses first (describe calls work everywhere), then older ones by prefix.
    configs: list[str] = []
    models: list[str] = []
    try:
        config_name = sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
        configs.append(config_name)
        variants = sm.describe_endpoint_config(EndpointConfigName=config_name)["ProductionVariants"]
        models += [v["ModelName"] for v in variants]
        sm.delete_endpoint(EndpointName=endpoint)
        print(f"deleted endpoint {endpoint}")
    except sm.exceptions.ClientError as error:
        print(f"endpoint {endpoint}: {error.response['Error']['Message']}")
    try:
        # Every page: one config and one model per training job pile up (List* return 10 a page).
        config_pages = sm.get_paginator("list_endpoint_configs").paginate(NameContains=f"{prefix}-")
        configs += [c["EndpointConfigName"] for page in config_pages for c in page["EndpointConfigs"]]
        model_pages = sm.get_paginator("list_models").paginate(NameContains=f"{prefix}-")
        models += [m["ModelName"] for page in model_pages for m in page["Models"]]
    except sm.exceptions.ClientError as error:  # an emulator without the List calls
        print(f"(not listing older configs/models: {error.response['Error']['Message']})")
    for config_name in dict.fromkeys(configs):
        sm.delete_endpoint_config(EndpointConfigName=config_name)
        print(f"deleted endpoint config {config_name}")
    for model_name in dict.fromkeys(models):
        sm.delete_model(ModelName=model_name)
        print(f"deleted model {model_name}")
    if not target.local:
        stack = args.stack or "<stack-name>"
        print(
            "\nThe buckets are retained on purpose (DeletionPolicy: Retain). To remove the stack itself:\n"
            f"  .venv-sam/bin/sam delete --stack-name {stack}\n"
            "then empty and delete the datasets/artifacts/inference buckets if you no longer need them."
        )
    return 0


def add_classify(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """The ``classify`` command and its flags (``common``: the location flags, repeated after it)."""
    classify = commands.add_parser("classify", parents=[common], help="classify an image with the endpoint")
    classify.add_argument("image", help=".jpg/.jpeg/.png file")
    classify.add_argument(
        "--via",
        choices=["sdk", "boto3"],
        default="boto3",
        help="SageMaker SDK v3 Endpoint.invoke, or a plain boto3 sagemaker-runtime client",
    )
    classify.set_defaults(func=cmd_classify)


def add_teardown(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """The ``teardown`` command and its flags (``common``: the location flags, repeated after it)."""
    teardown = commands.add_parser("teardown", parents=[common], help="delete endpoint, configs and models")
    teardown.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    teardown.set_defaults(func=cmd_teardown)
