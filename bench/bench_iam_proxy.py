"""What IAM enforcement costs a function's AWS calls: the same S3 and DynamoDB calls straight to moto
and through the authorizing proxy (localcloud/iam/proxy.py), interleaved, in one run.

    PYTHONPATH=. .venv/bin/python bench/bench_iam_proxy.py [--calls 300]

A tiny template (one bucket, one table, one role allowed both) in a LocalCloud with IAM on; the
client signs with the role's session credentials either way (moto does not check them). Printed:
calls/s and the median latency of each path, and the ratio proxied/direct. The machine may be
shared: compare ratios from one run only.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import boto3

from localcloud.cloud import LocalCloud, LocalCloudConfig

TEMPLATE = textwrap.dedent(
    """
    Resources:
      Data: {Type: AWS::S3::Bucket, Properties: {BucketName: bench-data}}
      Table:
        Type: AWS::DynamoDB::Table
        Properties:
          TableName: bench-table
          BillingMode: PAY_PER_REQUEST
          AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
          KeySchema: [{AttributeName: id, KeyType: HASH}]
      Role:
        Type: AWS::IAM::Role
        Properties:
          RoleName: bench-role
          AssumeRolePolicyDocument:
            Statement: [{Effect: Allow, Principal: {Service: lambda.amazonaws.com}, Action: sts:AssumeRole}]
          Policies:
            - PolicyName: bench
              PolicyDocument:
                Statement:
                  - {Effect: Allow, Action: [s3:GetObject, s3:PutObject], Resource: arn:aws:s3:::bench-data/*}
                  - {Effect: Allow, Action: dynamodb:GetItem, Resource: !GetAtt Table.Arn}
    """
)


def _clients(url: str, credentials: dict[str, str]) -> tuple[Any, Any]:
    kwargs = {
        "endpoint_url": url,
        "region_name": "us-east-1",
        "aws_access_key_id": credentials["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": credentials["AWS_SECRET_ACCESS_KEY"],
        "aws_session_token": credentials["AWS_SESSION_TOKEN"],
    }
    return boto3.client("s3", **kwargs), boto3.client("dynamodb", **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per path and service")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template.yaml"
        template.write_text(TEMPLATE)
        config = LocalCloudConfig(
            template=template, state_dir=Path(tmp) / "state", start_sagemaker=False, iam=True
        )
        with LocalCloud(config) as cloud:
            assert cloud.iam is not None
            credentials = cloud.iam.functions.session_environment(
                "arn:aws:iam::123456789012:role/bench-role", "bench"
            )
            cloud.client("s3").put_object(Bucket="bench-data", Key="k", Body=b"x" * 1024)
            paths = {"direct": _clients(cloud.endpoints["s3"], credentials)}
            paths["proxied"] = _clients(cloud.iam.functions.url, credentials)
            latencies: dict[str, list[float]] = {name: [] for name in paths}
            for _ in range(args.calls):
                for name, (s3, ddb) in paths.items():  # interleaved: the same load on both
                    started = time.perf_counter()
                    s3.get_object(Bucket="bench-data", Key="k")["Body"].read()
                    ddb.get_item(TableName="bench-table", Key={"id": {"S": "a"}})
                    latencies[name].append(time.perf_counter() - started)
            assert not cloud.iam.denials, cloud.iam.denials
    for name, values in latencies.items():
        print(
            f"{name:8s} {2 * len(values) / sum(values):7.1f} calls/s, "
            f"median {1000 * statistics.median(values) / 2:.2f} ms per call"
        )
    ratio = statistics.median(latencies["proxied"]) / statistics.median(latencies["direct"])
    print(f"proxied/direct median latency: {ratio:.2f}")


if __name__ == "__main__":
    main()
