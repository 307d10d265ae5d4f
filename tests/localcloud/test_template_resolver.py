"""The template resolver: intrinsic tags, parameters, conditions and local names."""

import textwrap

import pytest

from localcloud.containerenv import REPO_ROOT
from localcloud.template import TemplateError, TemplateResolver, load_template

TEMPLATE = textwrap.dedent(
    """
    Parameters:
      Prefix: {Type: String, Default: dogclf, AllowedPattern: "^[a-z]+$"}
      Count: {Type: Number, Default: 4, MinValue: 1, MaxValue: 10}
      Mode: {Type: String, Default: serverless, AllowedValues: [serverless, instance]}
      Sizes: {Type: CommaDelimitedList, Default: "32,64"}
      Email: {Type: String, Default: ""}
    Mappings:
      Regions:
        us-east-1: {Short: use1}
        eu-west-1: {Short: euw1}
    Conditions:
      IsInstance: !Equals [!Ref Mode, instance]
      HasEmail: !Not [!Equals [!Ref Email, ""]]
      Both: !And [!Condition IsInstance, !Condition HasEmail]
    Resources:
      Bucket:
        Type: AWS::S3::Bucket
        Properties:
          BucketName: !Sub "${AWS::StackName}-data-${AWS::AccountId}-${AWS::Region}"
      Unnamed:
        Type: AWS::S3::Bucket
      Queue:
        Type: AWS::SQS::Queue
      Topic:
        Type: AWS::SNS::Topic
      Table:
        Type: AWS::DynamoDB::Table
        Properties:
          KeySchema: [{AttributeName: id, KeyType: HASH}]
      OnlyWithEmail:
        Type: AWS::SNS::Subscription
        Condition: HasEmail
        Properties: {Endpoint: !Ref Email}
      Fn:
        Type: AWS::Serverless::Function
        Properties:
          Handler: app.handler
          Environment:
            Variables:
              BUCKET: !Ref Bucket
              BUCKET_ARN: !GetAtt Bucket.Arn
              QUEUE_ARN: !GetAtt [Queue, Arn]
              TOPIC: !Ref Topic
              TABLE: !Ref Table
              ENDPOINT: !Sub "${Prefix}-endpoint"
              ESCAPED: !Sub "${!NotResolved}-${Bucket.Arn}"
              VARS: !Sub ["${A}-${B}", {A: !Ref Prefix, B: !Select [1, !Ref Sizes]}]
              JOINED: !Join [",", [!Ref Prefix, !Ref "AWS::Partition", !Ref "AWS::URLSuffix"]]
              SPLIT: !Select [0, !Split ["-", !Ref Prefix]]
              MODE: !If [IsInstance, instance-mode, !Ref "AWS::NoValue"]
              SHORT: !FindInMap [Regions, !Ref "AWS::Region", Short]
              BOTH: !If [Both, "yes", "no"]
              ROLE: !GetAtt FnRole.Arn
    """
)


@pytest.fixture
def template(tmp_path):
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE)
    return load_template(path)


def env_of(resolver):
    return resolver.resources["Fn"].properties["Environment"]["Variables"]


def test_defaults_and_pseudo_parameters(template):
    resolver = TemplateResolver(template, stack_name="stk", region="eu-west-1")
    env = env_of(resolver)
    assert env["BUCKET"] == "stk-data-123456789012-eu-west-1"
    assert env["BUCKET_ARN"] == "arn:aws:s3:::stk-data-123456789012-eu-west-1"
    assert env["QUEUE_ARN"] == "arn:aws:sqs:eu-west-1:123456789012:stk-queue"
    assert env["TOPIC"] == "arn:aws:sns:eu-west-1:123456789012:stk-topic"
    assert env["TABLE"] == "stk-table"
    assert env["ENDPOINT"] == "dogclf-endpoint"
    assert env["ESCAPED"] == "${NotResolved}-arn:aws:s3:::stk-data-123456789012-eu-west-1"
    assert env["VARS"] == "dogclf-64"
    assert env["JOINED"] == "dogclf,aws,amazonaws.com"
    assert env["SPLIT"] == "dogclf"
    assert "MODE" not in env  # AWS::NoValue removes the key
    assert env["BOTH"] == "no"
    assert env["SHORT"] == "euw1"
    assert env["ROLE"] == "arn:aws:iam::123456789012:role/stk-fnrole"  # SAM's implicit role
    assert resolver.resources["Unnamed"].ref == "stk-unnamed"
    assert "OnlyWithEmail" not in resolver.resources


def test_overrides_change_conditions(template):
    resolver = TemplateResolver(
        template, stack_name="stk", parameter_overrides={"Mode": "instance", "Email": "a@b.c", "Prefix": "xy"}
    )
    env = env_of(resolver)
    assert env["MODE"] == "instance-mode"
    assert env["BOTH"] == "yes"
    assert env["ENDPOINT"] == "xy-endpoint"
    assert resolver.resources["OnlyWithEmail"].properties == {"Endpoint": "a@b.c"}


def test_queue_ref_is_a_url(template):
    resolver = TemplateResolver(template, stack_name="stk", queue_url_base="http://127.0.0.1:5000/")
    assert resolver.resources["Queue"].ref == "http://127.0.0.1:5000/123456789012/stk-queue"


@pytest.mark.parametrize(
    "overrides",
    [{"Mode": "bogus"}, {"NotDeclared": "1"}, {"Prefix": "UPPER"}, {"Count": "0"}, {"Count": "x"}],
)
def test_bad_overrides_are_clear_errors(template, overrides):
    with pytest.raises(TemplateError):
        TemplateResolver(template, parameter_overrides=overrides)


def test_unknown_ref_is_an_error(template):
    template["Resources"]["Fn"]["Properties"]["Environment"]["Variables"]["BAD"] = {"Ref": "Nope"}
    with pytest.raises(TemplateError, match="Nope"):
        TemplateResolver(template)


def test_the_project_template_resolves():
    template_path = REPO_ROOT / "template.yaml"
    if not template_path.exists():
        pytest.fail("template.yaml is missing")
    resolver = TemplateResolver(load_template(template_path), stack_name="local")
    functions = resolver.of_type("AWS::Serverless::Function")
    assert functions, "the template declares no functions"
    for function in functions:
        assert function.properties.get("Handler") or resolver.globals.get("Function", {}).get("Handler")
