"""No import cycle in the product (tools/import_graph.py), function-level and TYPE_CHECKING imports
counted: the Lambda package's endpoint modules (deploy, endpoint_lifecycle, the state adapter) once
formed one."""

from __future__ import annotations

from pathlib import Path

from tools import import_graph


def test_the_repository_has_no_import_cycle(capsys) -> None:
    assert import_graph.main(list(import_graph.DEFAULT_FOLDERS)) == 0, capsys.readouterr().out


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_function_level_and_type_checking_imports_close_a_cycle(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "functions/pipeline/__init__.py": "",
            "functions/pipeline/logic.py": "def make():\n    from pipeline.adapter import Store\n",
            "functions/pipeline/adapter.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pipeline.logic import make\n"
            ),
            "functions/pipeline/free.py": "from pipeline import logic\n",
        },
    )
    found = import_graph.cycles(import_graph.edges(["functions"], tmp_path))
    assert found == [["pipeline.adapter", "pipeline.logic"]]


def test_relative_and_script_sibling_imports_resolve(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "bench/run.py": "from audit import check\n",  # bench/ is a folder of scripts
            "bench/audit.py": "import importlib\nimportlib.import_module('bench.run')\n",
            "localcloud/__init__.py": "",
            "localcloud/a.py": "from .b import thing\n",
            "localcloud/b.py": "from . import a\n",
        },
    )
    edges = {(e.source, e.target) for e in import_graph.edges(["bench", "localcloud"], tmp_path)}
    assert {("bench.run", "bench.audit"), ("bench.audit", "bench.run")} <= edges
    assert {("localcloud.a", "localcloud.b"), ("localcloud.b", "localcloud.a")} <= edges
    assert import_graph.cycles(import_graph.edges(["bench", "localcloud"], tmp_path)) == [
        ["bench.audit", "bench.run"],
        ["localcloud.a", "localcloud.b"],
    ]
