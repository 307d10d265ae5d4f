"""The template reader: AWS's SAM transform, then intrinsic tags, parameters, conditions and local names."""

import pytest

from localcloud.environment.containerenv import REPO_ROOT
from localcloud.stack.resources import function_wiring
from localcloud.stack.template import TemplateError, TemplateResolver, load_template
from tests.support.fixtures import fixture_text

TEMPLATE = fixture_text("stack/resolver_template.yaml")


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
    assert env["ROLE"] == "arn:aws:iam::123456789012:role/stk-fnrole"  # the role the SAM transform adds
    assert resolver.resources["FnRole"].type == "AWS::IAM::Role"
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


def test_sam_properties_the_transform_rejects_are_clear_errors(template):
    # A SAM function needs a Runtime with a zip package; the translator says so and the reader passes
    # its words on rather than starting a cloud with a function AWS would refuse.
    del template["Resources"]["Fn"]["Properties"]["Runtime"]
    with pytest.raises(TemplateError, match="SAM transform failed"):
        TemplateResolver(template)


def test_the_template_is_read_from_the_transformed_cloudformation(template):
    resolver = TemplateResolver(template, stack_name="stk")
    assert resolver.resources["Fn"].type == "AWS::Lambda::Function"
    assert resolver.resources["Fn"].properties["Code"] == {"S3Bucket": "localcloud-code", "S3Key": "src/"}
    assert not resolver.of_type("AWS::Serverless::Function")


@pytest.fixture(scope="module")
def project():
    """template.yaml transformed and resolved with its defaults, and the local functions built from it."""
    path = REPO_ROOT / "template.yaml"
    resolver = TemplateResolver(load_template(path), stack_name="local")
    return resolver, function_wiring(resolver, path, "us-east-1", {})


FUNCTIONS = [
    "Ingest",
    "DatasetReady",
    "FeaturesCompleted",
    "TuningCompleted",
    "TrainingCompleted",
    "EndpointState",
    "Classify",
    "ImportUrl",
]


def test_the_project_functions_come_from_the_generated_lambda_functions(project):
    _, wiring = project
    assert sorted(wiring.specs) == sorted(f"local-{name.lower()}function" for name in FUNCTIONS)
    ingest = wiring.specs["local-ingestfunction"]
    assert ingest.handler == "pipeline.handlers.ingest.handler"
    assert (ingest.timeout_s, ingest.memory_mb) == (900, 1024)  # the function's own, over Globals
    assert ingest.code_dir == REPO_ROOT / "functions"
    # Globals.Layers [DependenciesLayer] + the function's [TrainingCodeLayer]: SAM appends, and /opt
    # resolves into the layer that provides it (training/ holds dogclf/, the later layer wins /opt).
    assert ingest.environment["TRAINING_CODE_DIR"] == str(REPO_ROOT / "training")
    assert ingest.environment["JOB_NAME_PREFIX"] == "dogclf"  # from Globals.Environment
    queue = "arn:aws:sqs:us-east-1:123456789012:local-failedeventsqueue"
    for name, spec in wiring.specs.items():
        # AWS::Lambda::EventInvokeConfig: Ingest retries once, the others twice; all fail to the queue.
        assert spec.max_retries == (1 if name == "local-ingestfunction" else 2), name
        assert spec.on_failure is not None and spec.on_failure.arn == queue, name


def test_the_project_s3_events_come_from_the_generated_bucket_notifications(project):
    _, wiring = project
    datasets, inference = "local-datasets-123456789012-us-east-1", "local-inference-123456789012-us-east-1"
    found = {
        (s.function, s.bucket, tuple(s.events), tuple((r["Name"], r["Value"]) for r in s.filter_rules))
        for s in wiring.s3
    }
    assert found == {
        (
            "local-ingestfunction",
            datasets,
            ("s3:ObjectCreated:*",),
            (("prefix", "uploads/"), ("suffix", ".zip")),
        ),
        (  # S3 suffix rules are case-sensitive: upper case needs its own rule
            "local-ingestfunction",
            datasets,
            ("s3:ObjectCreated:*",),
            (("prefix", "uploads/"), ("suffix", ".ZIP")),
        ),
        (
            "local-datasetreadyfunction",
            datasets,
            ("s3:ObjectCreated:*",),
            (("prefix", "datasets/"), ("suffix", "/manifest.json")),
        ),
        ("local-classifyfunction", inference, ("s3:ObjectCreated:*",), (("prefix", "input/"),)),
    }


def test_the_project_rules_come_from_the_generated_event_rules_and_target_the_alias(project):
    resolver, wiring = project
    assert {(s.function, s.event_id) for s in wiring.eventbridge} == {
        ("local-featurescompletedfunction", "FeaturesCompletedFunctionFeaturesFinished"),
        ("local-tuningcompletedfunction", "TuningCompletedFunctionTuningFinished"),
        ("local-trainingcompletedfunction", "TrainingCompletedFunctionTrainingFinished"),
        ("local-endpointstatefunction", "EndpointStateFunctionEndpointStateChanged"),
    }
    [target] = resolver.resources["TuningCompletedFunctionTuningFinished"].properties["Targets"]
    # AutoPublishAlias: live -> the rule invokes the alias, which runs the function's code.
    assert (
        target["Arn"] == "arn:aws:lambda:us-east-1:123456789012:function:local-tuningcompletedfunction:live"
    )


def test_reserved_concurrency_is_off_by_default_and_caps_the_local_function_when_set(project):
    """The template's ReservedConcurrentExecutions (an !If on a parameter, 0 = none) reaches the runner."""
    _, default_wiring = project
    assert {name: spec.reserved_concurrency for name, spec in default_wiring.specs.items()} == {
        f"local-{name.lower()}function": None for name in FUNCTIONS
    }
    path = REPO_ROOT / "template.yaml"
    overrides = {"IngestReservedConcurrency": "2", "ClassifyReservedConcurrency": "5"}
    resolver = TemplateResolver(load_template(path), stack_name="local", parameter_overrides=overrides)
    specs = function_wiring(resolver, path, "us-east-1", {}).specs
    reserved = {name: spec.reserved_concurrency for name, spec in specs.items() if spec.reserved_concurrency}
    assert reserved == {"local-ingestfunction": 2, "local-classifyfunction": 5}
