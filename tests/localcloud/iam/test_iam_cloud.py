"""IAM enforced in the local cloud (localcloud.iam), end to end on a tiny template: each function
calls AWS as its own role, a call its policies do not allow fails in the service's error shape with
AWS's message, the SageMaker emulator acts as the execution role, and a role the account does not
have is refused at CreateTrainingJob."""

import textwrap
from pathlib import Path

import pytest
from botocore.exceptions import WaiterError

from localcloud.cloud import LocalCloud, LocalCloudConfig
from localcloud.sagemaker.registry import SAGEMAKER_SESSION
from localcloud.shared import ACCOUNT_ID

TEMPLATE = textwrap.dedent(
    """
    Transform: AWS::Serverless-2016-10-31
    Globals:
      Function:
        CodeUri: code/
        Runtime: python3.13
        Timeout: 30
    Resources:
      Data:
        Type: AWS::S3::Bucket
        Properties:
          BucketName: !Sub "${AWS::StackName}-data"
      Table:
        Type: AWS::DynamoDB::Table
        Properties:
          BillingMode: PAY_PER_REQUEST
          AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
          KeySchema: [{AttributeName: id, KeyType: HASH}]
      ExecutionRole:
        Type: AWS::IAM::Role
        Properties:
          AssumeRolePolicyDocument:
            Statement:
              - {Effect: Allow, Principal: {Service: sagemaker.amazonaws.com}, Action: sts:AssumeRole}
          Policies:
            - PolicyName: read-allowed
              PolicyDocument:
                Statement:
                  - Effect: Allow
                    Action: s3:ListBucket
                    Resource: !GetAtt Data.Arn
                  - Effect: Allow
                    Action: s3:GetObject
                    Resource: !Sub "${Data.Arn}/allowed/*"
      Caller:
        Type: AWS::Serverless::Function
        Properties:
          Handler: app.call
          Environment:
            Variables:
              BUCKET: !Ref Data
              TABLE: !Ref Table
          Policies:
            - S3ReadPolicy: {BucketName: !Ref Data}
            - Statement:
                - Effect: Allow
                  Action: dynamodb:GetItem
                  Resource: !GetAtt Table.Arn
                - Effect: Allow
                  Action: sagemaker:DescribeTrainingJob
                  Resource: !Sub "arn:aws:sagemaker:${AWS::Region}:${AWS::AccountId}:training-job/allowed-*"
    Outputs:
      ExecutionRoleArn:
        Value: !GetAtt ExecutionRole.Arn
    """
)

# One handler that makes the call the event names and reports what the client saw.
HANDLER = textwrap.dedent(
    """
    import os
    import boto3
    from botocore.exceptions import ClientError

    KEY = {"id": {"S": "a"}}

    def call(event, context):
        bucket, table = os.environ["BUCKET"], os.environ["TABLE"]
        calls = {
            "s3_get": lambda: boto3.client("s3").get_object(Bucket=bucket, Key="k")["Body"].read().decode(),
            "s3_put": lambda: boto3.client("s3").put_object(Bucket=bucket, Key="k", Body=b"x") and "put",
            "ddb_get": lambda: str(boto3.client("dynamodb").get_item(TableName=table, Key=KEY)),
            "ddb_put": lambda: boto3.client("dynamodb").put_item(TableName=table, Item=KEY),
            "sm_describe": lambda: boto3.client("sagemaker").describe_training_job(
                TrainingJobName=event["job"]
            ),
        }
        try:
            return {"ok": str(calls[event["call"]]())}
        except ClientError as error:
            return {
                "status": error.response["ResponseMetadata"]["HTTPStatusCode"],
                "code": error.response["Error"]["Code"],
                "message": error.response["Error"].get("Message", ""),
            }
    """
)


def _write_stack(tmp_path: Path) -> Path:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "app.py").write_text(HANDLER)
    template = tmp_path / "template.yaml"
    template.write_text(TEMPLATE)
    return template


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory):
    tmp_path = tmp_path_factory.mktemp("iam")
    config = LocalCloudConfig(
        template=_write_stack(tmp_path), state_dir=tmp_path / "state", stack_name="iam", iam=True
    )
    with LocalCloud(config) as running:
        running.client("s3").put_object(Bucket="iam-data", Key="k", Body=b"hello")
        running.client("s3").put_object(Bucket="iam-data", Key="allowed/a", Body=b"a")
        running.client("s3").put_object(Bucket="iam-data", Key="secret/b", Body=b"b")
        yield running


def _invoke(cloud: LocalCloud, **event: str) -> dict:
    assert cloud.runner is not None
    return cloud.runner.invoke("iam-caller", event)


ROLE = "iam-callerrole"
PRINCIPAL = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{ROLE}/iam-caller"


def test_a_function_calls_as_its_own_role_session(cloud: LocalCloud) -> None:
    # The function's credentials are its role session's, not the local cloud's shared test keys.
    assert cloud.runner is not None
    environment = cloud.runner.function("iam-caller").environment
    assert environment["AWS_ACCESS_KEY_ID"].startswith("ASIA")
    assert environment["AWS_ACCESS_KEY_ID"] != "testing"
    assert _invoke(cloud, call="s3_get") == {"ok": "hello"}


def test_an_s3_call_the_role_does_not_allow_is_a_403_access_denied(cloud: LocalCloud) -> None:
    result = _invoke(cloud, call="s3_put")
    assert result["status"] == 403
    assert result["code"] == "AccessDenied"
    assert result["message"] == (
        f"User: {PRINCIPAL} is not authorized to perform: s3:PutObject on resource: "
        "arn:aws:s3:::iam-data/k because no identity-based policy allows the s3:PutObject action"
    )
    assert cloud.client("s3").get_object(Bucket="iam-data", Key="k")["Body"].read() == b"hello"


def test_a_json_service_call_the_role_does_not_allow_is_an_access_denied_exception(cloud: LocalCloud) -> None:
    assert _invoke(cloud, call="ddb_get")["ok"].startswith("{")  # GetItem is allowed
    result = _invoke(cloud, call="ddb_put")
    table_arn = f"arn:aws:dynamodb:us-east-1:{ACCOUNT_ID}:table/iam-table"
    assert (result["status"], result["code"]) == (400, "AccessDeniedException")
    assert result["message"] == (
        f"User: {PRINCIPAL} is not authorized to perform: dynamodb:PutItem on resource: {table_arn} "
        "because no identity-based policy allows the dynamodb:PutItem action"
    )
    assert "Item" not in cloud.client("dynamodb").get_item(TableName="iam-table", Key={"id": {"S": "a"}})


def test_a_sagemaker_call_outside_the_policys_resources_is_denied_by_the_emulators_front(
    cloud: LocalCloud,
) -> None:
    allowed = _invoke(cloud, call="sm_describe", job="allowed-job")
    # Allowed through IAM, then the emulator's own answer: no such job.
    assert (allowed["code"], allowed["message"]) == ("ValidationException", "Requested resource not found.")
    denied = _invoke(cloud, call="sm_describe", job="Other-Job")
    assert (denied["status"], denied["code"]) == (400, "AccessDeniedException")
    # SageMaker ARNs carry the name in lower case.
    assert (
        f"on resource: arn:aws:sagemaker:us-east-1:{ACCOUNT_ID}:training-job/other-job " in denied["message"]
    )


def test_the_execution_role_reads_only_what_its_policy_allows(cloud: LocalCloud) -> None:
    assert cloud.iam is not None
    role_arn = cloud.outputs()["ExecutionRoleArn"]
    environment = cloud.iam.jobs.session_environment(role_arn, SAGEMAKER_SESSION)
    import boto3
    from botocore.exceptions import ClientError

    s3 = boto3.client(
        "s3",
        endpoint_url=cloud.iam.jobs.url,
        region_name="us-east-1",
        aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=environment["AWS_SESSION_TOKEN"],
    )
    assert s3.get_object(Bucket="iam-data", Key="allowed/a")["Body"].read() == b"a"
    with pytest.raises(ClientError) as denied:
        s3.get_object(Bucket="iam-data", Key="secret/b")
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    assert "assumed-role/iam-executionrole/SageMaker is not authorized to perform: s3:GetObject" in str(
        denied.value
    )


def test_a_training_job_whose_channel_its_role_cannot_read_fails_at_the_download(cloud: LocalCloud) -> None:
    sagemaker = cloud.client("sagemaker")
    role_arn = cloud.outputs()["ExecutionRoleArn"]
    sagemaker.create_training_job(**_training_job("secret-channel", role_arn, "s3://iam-data/secret/"))
    waiter = sagemaker.get_waiter("training_job_completed_or_stopped")
    waiter.config.delay, waiter.config.max_attempts = 0.2, 300
    with pytest.raises(WaiterError):
        waiter.wait(TrainingJobName="secret-channel")  # the waiter raises on Failed
    described = sagemaker.describe_training_job(TrainingJobName="secret-channel")
    assert described["TrainingJobStatus"] == "Failed"
    assert "Data download failed for channel train" in described["FailureReason"]
    # boto3's download starts with HeadObject, and S3 answers a denied HEAD with a bare 403 (no body,
    # so no error code): the same reason AWS would record.
    assert "(403) when calling the HeadObject operation: Forbidden" in described["FailureReason"]


def test_a_role_the_account_does_not_have_is_refused_as_aws_refuses_it(cloud: LocalCloud) -> None:
    from botocore.exceptions import ClientError

    missing = f"arn:aws:iam::{ACCOUNT_ID}:role/no-such-role"
    with pytest.raises(ClientError) as refused:
        cloud.client("sagemaker").create_training_job(
            **_training_job("no-role", missing, "s3://iam-data/allowed/")
        )
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert refused.value.response["Error"]["Message"] == (
        f"Could not assume role {missing}. Please ensure that the role exists and allows principal "
        "'sagemaker.amazonaws.com' to assume the role."
    )


def test_a_function_role_sagemaker_may_not_assume_is_refused_too(cloud: LocalCloud) -> None:
    from botocore.exceptions import ClientError

    lambda_role = f"arn:aws:iam::{ACCOUNT_ID}:role/{ROLE}"  # trusts lambda.amazonaws.com only
    with pytest.raises(ClientError) as refused:
        cloud.client("sagemaker").create_training_job(
            **_training_job("lambda-role", lambda_role, "s3://iam-data/allowed/")
        )
    assert refused.value.response["Error"]["Code"] == "ValidationException"


def _training_job(name: str, role_arn: str, channel: str) -> dict:
    return {
        "TrainingJobName": name,
        "RoleArn": role_arn,
        "AlgorithmSpecification": {"TrainingImage": "pytorch-training", "TrainingInputMode": "File"},
        "HyperParameters": {"sagemaker_submit_directory": '"s3://iam-data/allowed/a"'},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": channel}},
            }
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://iam-data/output/"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
    }


def test_the_iam_endpoint_answers_sdk_v3s_role_check_from_the_roles_policies(
    cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SageMaker SDK v3 checks a role with SimulatePrincipalPolicy and GetRole before a job
    (sagemaker/core/helper/iam_role_resolver.py): the cloud's IAM endpoint answers both, so the
    SDK's verdict is the local evaluator's over the template's policies. (It runs before the switch
    test: a second LocalCloud in one process resets moto, the roles it created included.)"""
    from types import SimpleNamespace

    import boto3
    from sagemaker.core.helper.iam_role_resolver import RoleValidationError, resolve_and_validate_role

    for key, value in cloud.environment().items():
        monkeypatch.setenv(key, value)  # what a user exports (AWS_ENDPOINT_URL_IAM among them)
    assert cloud.resolver is not None
    role_arn = cloud.resolver.resources["ExecutionRole"].attributes["Arn"]
    iam = boto3.client("iam")
    simulated = iam.simulate_principal_policy(
        PolicySourceArn=role_arn,
        ActionNames=["s3:GetObject"],
        ResourceArns=["arn:aws:s3:::iam-data/allowed/a", "arn:aws:s3:::iam-data/secret/b"],
    )["EvaluationResults"]
    assert [result["EvalDecision"] for result in simulated] == ["allowed", "implicitDeny"]
    trust = iam.get_role(RoleName=role_arn.rsplit("/", 1)[1])["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}

    # The role lacks ecr:GetAuthorizationToken, which the SDK requires of a serving role: refused
    # before any SageMaker call, as on AWS.
    session = SimpleNamespace(boto_session=boto3.Session())
    with pytest.raises(RoleValidationError, match="ecr:GetAuthorizationToken"):
        resolve_and_validate_role(role_arn, role_type="serving", sagemaker_session=session)


def test_the_switch_turns_enforcement_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCALCLOUD_IAM", "off")
    config = LocalCloudConfig(
        template=_write_stack(tmp_path), state_dir=tmp_path / "state", stack_name="iam", start_sagemaker=False
    )
    assert config.iam is False
    with LocalCloud(config) as running:
        assert running.iam is None
        assert running.runner is not None
        assert running.runner.invoke("iam-caller", {"call": "s3_put"}) == {"ok": "put"}
    monkeypatch.setenv("LOCALCLOUD_IAM", "maybe")
    with pytest.raises(ValueError, match="LOCALCLOUD_IAM='maybe': expected on or off"):
        LocalCloudConfig()
