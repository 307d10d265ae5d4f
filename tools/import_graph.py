"""The repository's import graph, and the cycles in it: exit 1 listing each cycle, 0 when there is none.

Every import counts, wherever it is written: module level, inside a function (a "lazy" import still
ties the two modules together), under ``if TYPE_CHECKING:`` (mypy follows it, and so does a reader),
and ``importlib.import_module("literal")``. An import of ``a.b.c`` is an edge to ``a.b.c`` and to the
packages ``a`` and ``a.b`` whose ``__init__`` it runs.

Module names are what the code imports them as: ``functions/`` holds the Lambda package ``pipeline``
and ``training/`` the package ``dogclf`` and the job scripts, so they are import roots of their own;
everything else is named from the repository root (``localcloud.stack.sam``, ``bench.bench_soak``).
A bare import next to a script in a folder that is not a package (``bench/``: ``from soak_audit
import audit``) resolves to the sibling file, as the script's own directory comes first on sys.path.

    .venv/bin/python tools/import_graph.py [FOLDER ...] [--known a.b,c.d ...]

``--known`` names a cycle (its modules, comma-separated) that is reported but does not fail the run;
one that no longer exists is reported too, so the exception can be removed.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_FOLDERS = ("functions", "training", "localcloud", "cli", "bench", "tools")
IMPORT_ROOTS = ("functions", "training")  # folders whose contents are imported without the folder name
SKIPPED_PARTS = {"__pycache__", "wheels", "build"}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    where: str  # path:line of the import


def module_name(path: Path, repo: Path = REPO) -> str:
    relative = path.relative_to(repo)
    if relative.parts[0] in IMPORT_ROOTS:
        relative = relative.relative_to(relative.parts[0])
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def python_files(folders: Iterable[str], repo: Path = REPO) -> Iterator[Path]:
    for folder in folders:
        for path in sorted((repo / folder).rglob("*.py")):
            relative = path.relative_to(repo).parts
            if not SKIPPED_PARTS.intersection(relative) and not any(p.startswith(".") for p in relative):
                yield path


class _Imports(ast.NodeVisitor):
    """(dotted name, relative level, imported names, line) of every import in a module."""

    def __init__(self) -> None:
        self.found: list[tuple[str, int, list[str], int]] = []

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append((alias.name, 0, [], node.lineno))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.found.append((node.module or "", node.level, [a.name for a in node.names], node.lineno))

    def visit_Call(self, node: ast.Call) -> None:
        function = node.func
        name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
        literal = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
        if name == "import_module" and isinstance(literal, str) and not literal.startswith("."):
            self.found.append((literal, 0, [], node.lineno))
        self.generic_visit(node)


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def edges(folders: Iterable[str], repo: Path = REPO) -> list[Edge]:
    files = list(python_files(folders, repo))
    modules = {module_name(path, repo): path for path in files}
    found: list[Edge] = []
    for path in files:
        source = module_name(path, repo)
        is_package = path.name == "__init__.py"
        package = source if is_package else source.rpartition(".")[0]
        script_dir = not (path.parent / "__init__.py").exists() and path.parent.name not in IMPORT_ROOTS
        visitor = _Imports()
        visitor.visit(ast.parse(path.read_text(), str(path)))
        for dotted, level, names, line in visitor.found:
            if level:
                base = package.split(".") if package else []
                base = base[: len(base) - (level - 1)] if level > 1 else base
                dotted = ".".join([*base, dotted] if dotted else base)
            elif script_dir and (path.parent / f"{dotted.split('.')[0]}.py").exists():
                dotted = f"{package}.{dotted}" if package else dotted
            targets = [*_with_parents(dotted), *(f"{dotted}.{name}" for name in names)]
            where = f"{path.relative_to(repo)}:{line}"
            for target in dict.fromkeys(targets):
                if target in modules and target != source:
                    found.append(Edge(source, target, where))
    return found


def cycles(graph_edges: Iterable[Edge]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for edge in graph_edges:
        graph.setdefault(edge.source, set()).add(edge.target)
        graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:  # recursion depth is bounded by the longest import chain
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(components)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="*", default=list(DEFAULT_FOLDERS))
    parser.add_argument("--known", action="append", default=[], help="a tolerated cycle: a.b,c.d")
    args = parser.parse_args(argv)
    graph_edges = edges(args.folders)
    known = {frozenset(cycle.split(",")) for cycle in args.known}
    found = cycles(graph_edges)
    failing = 0
    for component in found:
        members = set(component)
        tolerated = frozenset(component) in known
        print(f"{'known cycle' if tolerated else 'import cycle'}: {' <-> '.join(component)}")
        for edge in graph_edges:
            if edge.source in members and edge.target in members:
                print(f"    {edge.source} -> {edge.target}  ({edge.where})")
        failing += not tolerated
    for gone in known - {frozenset(component) for component in found}:
        print(f"known cycle no longer present (remove the exception): {','.join(sorted(gone))}")
    modules = {edge.source for edge in graph_edges} | {edge.target for edge in graph_edges}
    print(f"{len(modules)} modules, {len(graph_edges)} import edges, {failing} cycle(s)")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
