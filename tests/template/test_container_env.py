"""The container-faithful base environment agrees with template.yaml and with its own pins.

container/requirements.txt records which SageMaker PyTorch images .venv-container mirrors and pins
their packages. These checks fail when the template's default FrameworkVersion moves without the
environment, when the built environment drifts from the pins, when smdebug sneaks into the base, or
when training/requirements.txt repeats something the image already has.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from template_loader import REPO

from localcloud.environment.containerenv import base_python
from pipeline.image_uris import FRAMEWORK_VERSIONS, pytorch_image_uri

CONTAINER_REQUIREMENTS = REPO / "container" / "requirements.txt"
JOB_REQUIREMENTS = REPO / "training" / "requirements.txt"
TAG = re.compile(
    r"^763104351884\.dkr\.ecr\.<region>\.amazonaws\.com/pytorch-(?P<scope>training|inference):"
    r"(?P<framework>\d+\.\d+\.\d+)-(?P<processor>cpu|gpu)-py(?P<py>\d+)(?:-cu\d+)?-ubuntu\d+\.\d+-sagemaker$"
)


def _header(path: Path) -> dict[str, str]:
    """`# key: value` lines of the header comment."""
    fields: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^#\s*([a-z-]+):\s*(\S.*)$", line)
        if match:
            fields[match.group(1)] = match.group(2).strip()
    return fields


def _pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        name, sep, version = line.partition("==")
        assert sep and version, f"{path.name}: {line!r} is not pinned with =="
        pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


@pytest.fixture(scope="module")
def built() -> dict[str, Any]:
    """What the built base environment really has (asked of its own interpreter)."""
    python = base_python()  # raises with "make venvs" when it is missing
    names = sorted(_pins(CONTAINER_REQUIREMENTS) | _pins(JOB_REQUIREMENTS))
    code = (
        "import importlib.metadata as m, importlib.util as u, json, sys\n"
        "def v(n):\n"
        "    try:\n"
        "        return m.version(n)\n"
        "    except m.PackageNotFoundError:\n"
        "        return None\n"
        f"names = {names!r}\n"
        "print(json.dumps({'python': '%d.%d' % sys.version_info[:2],"
        " 'versions': {n: v(n) for n in names},"
        " 'smdebug_importable': u.find_spec('smdebug') is not None}))\n"
    )
    out = subprocess.run([str(python), "-I", "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_recorded_images_match_the_template_default(template: dict[str, Any]) -> None:
    framework = template["Parameters"]["FrameworkVersion"]["Default"]
    header = _header(CONTAINER_REQUIREMENTS)
    python = header["python"]
    py_tag = "py" + python.replace(".", "")
    assert FRAMEWORK_VERSIONS[framework] == py_tag  # what the Lambda asks SageMaker for
    for scope in ("training", "inference"):
        tag = TAG.match(header[f"mirrors-{scope}-image"])
        assert tag, f"mirrors-{scope}-image is not a DLC SageMaker tag: {header[f'mirrors-{scope}-image']}"
        assert tag["scope"] == scope
        assert tag["framework"] == framework, f"{scope} image {tag['framework']} != template {framework}"
        assert "py" + tag["py"] == py_tag


def test_recorded_images_are_the_ones_the_default_instance_types_run(template: dict[str, Any]) -> None:
    """The base mirrors what the defaults really run: every training stage's default instance type and
    the default (serverless) endpoint get the image the Lambdas ask for, processor and all."""
    parameters = template["Parameters"]
    framework = parameters["FrameworkVersion"]["Default"]
    header = _header(CONTAINER_REQUIREMENTS)
    mirrored = {
        scope: header[f"mirrors-{scope}-image"].split(":", 1)[1] for scope in ("training", "inference")
    }
    for stage in ("FeaturesInstanceType", "TuningInstanceType", "TrainingInstanceType"):
        uri = pytorch_image_uri(framework, "us-east-1", "training", parameters[stage]["Default"])
        assert mirrored["training"].startswith(uri.split(":", 1)[1] + "-"), (stage, uri)
    assert parameters["EndpointMode"]["Default"] == "serverless"
    uri = pytorch_image_uri(framework, "us-east-1", "inference", None)
    assert mirrored["inference"].startswith(uri.split(":", 1)[1] + "-"), uri


def test_pins_match_the_framework_version(template: dict[str, Any]) -> None:
    framework = template["Parameters"]["FrameworkVersion"]["Default"]
    pins = _pins(CONTAINER_REQUIREMENTS)
    assert pins["torch"] == framework
    # torchvision releases pair with torch: 2.N <-> 0.(N+15) (2.6 <-> 0.21).
    major, minor, _ = (int(x) for x in framework.split("."))
    assert major == 2 and pins["torchvision"].startswith(f"0.{minor + 15}.")
    for toolkit in ("sagemaker-training", "sagemaker-pytorch-training", "sagemaker-inference"):
        assert toolkit in pins
    assert pins["sagemaker-pytorch-inference"] == "2.0.25"  # the 2.6 inference images' core package
    assert pins["torchserve"] == pins["torch-model-archiver"] == "0.12.0"
    assert "smdebug" not in pins  # the images do not have it; the job's requirements bring it


def test_built_base_environment_matches_the_pins(built: dict[str, Any]) -> None:
    assert built["python"] == _header(CONTAINER_REQUIREMENTS)["python"]
    pins = _pins(CONTAINER_REQUIREMENTS)
    wrong = {
        name: (want, built["versions"][name])
        for name, want in pins.items()
        if built["versions"][name] != want
    }
    assert not wrong, f"(pinned, installed) differ in .venv-container: {wrong}; rebuild with `make venvs`"


def test_smdebug_is_not_in_the_base(built: dict[str, Any]) -> None:
    assert built["versions"]["smdebug"] is None
    assert built["smdebug_importable"] is False


def test_job_requirements_add_only_what_the_image_lacks_or_has_at_an_unusable_version(
    built: dict[str, Any],
) -> None:
    job = _pins(JOB_REQUIREMENTS)
    assert job["smdebug"] == "1.0.34"
    redundant = {name: version for name, version in job.items() if built["versions"][name] == version}
    assert not redundant, f"training/requirements.txt repeats what the image already has: {redundant}"
    # numpy: smdebug calls ndarray.tostring() (gone in 2.3), and the image's scipy needs numpy 2.
    assert job["numpy"].startswith("2.") and int(job["numpy"].split(".")[1]) < 3
