"""The dependencies layer: every function gets it, sam build knows how to build it, and the function
packages hold only our code (bench/bench_cold_start.py measures the sizes)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_function_gets_the_dependencies_layer_through_globals(template):
    # SAM puts Globals' Layers before a function's own, so this reaches all five functions.
    assert template["Globals"]["Function"]["Layers"] == [{"Ref": "DependenciesLayer"}]
    layer = template["Resources"]["DependenciesLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert layer["Properties"]["ContentUri"] == "functions/"
    assert layer["Properties"]["CompatibleRuntimes"] == [template["Globals"]["Function"]["Runtime"]]
    assert layer["Properties"]["CompatibleArchitectures"] == template["Globals"]["Function"]["Architectures"]


def test_makefile_builds_the_layer_into_python_and_functions_without_dependencies(template):
    makefile = (REPO / "functions" / "Makefile").read_text()
    layer_recipe = makefile.split("build-DependenciesLayer:", 1)[1].split("\n\n", 1)[0]
    assert '--target "$(ARTIFACTS_DIR)/python" -r requirements-lambda.txt' in layer_recipe
    resources = template["Resources"]
    functions = [name for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function"]
    declared = re.search(r"^FUNCTIONS := (.*)$", makefile, re.M)
    assert declared and sorted(declared.group(1).split()) == sorted(functions)
    function_recipe = makefile.split("$(addprefix build-,$(FUNCTIONS)):", 1)[1]
    assert "pip install" not in function_recipe and 'cp -R pipeline "$(ARTIFACTS_DIR)/"' in function_recipe
