"""docs/local.md's fidelity table: every "yes" names tests that exist, every "no" says what AWS does.

Test names are collected with ast (no pytest run): a row that names a renamed or deleted test fails
here, so the table cannot drift from the suite.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

from localcloud.environment.containerenv import REPO_ROOT

DOC = REPO_ROOT / "docs" / "local.md"
SECTION = "## Fidelity to AWS"
# The behaviours the table must cover (every part of AWS the local cloud stands in for), by the area
# names the table uses ("Template": the local cloud is built from the CloudFormation AWS's SAM
# transform makes of template.yaml).
AREAS = {
    "Template",
    "S3 notifications",
    "EventBridge",
    "Lambda",
    "Training toolkit",
    "Tuning",
    "Endpoints",
    "Error shapes",
    # What AWS's own clients (SDK v2, AWS CLI) read and send.
    "Response shapes",
    "AWS clients",
}
TEST_REF = re.compile(r"`(tests/[\w/]+\.py)::(\w+(?:::\w+)?)`")


def table_rows(markdown: str) -> list[list[str]]:
    """The body rows of the first table after the section heading, as stripped cells."""
    if SECTION not in markdown:
        return []
    section = markdown.split(SECTION, 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip().strip("|").split("|")] for row in rows[2:]]


@cache
def defined_tests(path: Path) -> frozenset[str]:
    """`test_x` and `TestClass::test_x` names defined in a test file."""
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.update(
                f"{node.name}::{item.name}"
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            )
    return frozenset(names)


def problems(markdown: str, root: Path) -> list[str]:
    found: list[str] = []
    rows = table_rows(markdown)
    if not rows:
        return [f"no table under {SECTION!r}"]
    for row in rows:
        if len(row) != 4:
            found.append(f"row does not have 4 cells: {row}")
            continue
        area, behaviour, local, proof = row
        if area not in AREAS:
            found.append(f"{behaviour}: unknown area {area!r}")
        refs = TEST_REF.findall(proof)
        if local == "yes":
            if not refs:
                found.append(f"{behaviour}: 'yes' names no test")
            for file, name in refs:
                path = root / file
                if not path.is_file():
                    found.append(f"{behaviour}: {file} does not exist")
                elif name not in defined_tests(path):
                    found.append(f"{behaviour}: {file} defines no {name}")
        elif local == "no":
            if "AWS" not in proof:
                found.append(f"{behaviour}: 'no' does not say what to expect on AWS")
        else:
            found.append(f"{behaviour}: local must be 'yes' or 'no', got {local!r}")
    missing = AREAS - {row[0] for row in rows if row}
    found.extend(f"area {area!r} has no row" for area in sorted(missing))
    return found


def test_every_named_test_exists_and_every_area_is_covered() -> None:
    assert problems(DOC.read_text(), REPO_ROOT) == []


def test_a_row_naming_a_missing_test_is_reported(tmp_path: Path) -> None:
    test_file = tmp_path / "tests" / "test_x.py"
    test_file.parent.mkdir()
    test_file.write_text(
        "def test_real() -> None:\n    pass\n\n\n"
        "class TestGroup:\n    def test_member(self) -> None:\n        pass\n"
    )
    header = f"{SECTION}\n\n| area | behaviour | local | proof |\n| --- | --- | --- | --- |\n"
    rows = [
        "| S3 notifications | a | yes | `tests/test_x.py::test_real` and"
        " `tests/test_x.py::TestGroup::test_member` |",
        "| EventBridge | b | yes | `tests/test_x.py::test_gone` |",
        "| Lambda | c | yes | no test named |",
        "| Training toolkit | d | no | nothing said |",
        "| Tuning | e | maybe | On AWS: x |",
        "| Endpoints | f | no | On AWS: y |",
        "| Template | g | yes | `tests/test_x.py::test_real` |",
    ]
    found = problems(header + "\n".join(rows) + "\n", tmp_path)
    assert found == [
        "b: tests/test_x.py defines no test_gone",
        "c: 'yes' names no test",
        "d: 'no' does not say what to expect on AWS",
        "e: local must be 'yes' or 'no', got 'maybe'",
        "area 'AWS clients' has no row",
        "area 'Error shapes' has no row",
        "area 'Response shapes' has no row",
    ]
