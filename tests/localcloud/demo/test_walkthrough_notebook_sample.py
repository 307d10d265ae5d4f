"""notebooks/walkthrough.ipynb generates the demo's sample dataset, not a look-alike.

The notebook runs in .venv-sdk2, where localcloud (moto, the emulator) cannot be imported, so it names
tools/sample_data.py's options itself; the local stack's tuning ranges are sized for the demo's sample
(``DemoSettings``: enough training steps for the Debugger rules). This test reads the options from the
notebook's cell (its ``sample_options`` literals) and holds them to ``DemoSettings``.
"""

from __future__ import annotations

import ast
import json

from localcloud.demo.run import DemoSettings
from localcloud.environment.containerenv import REPO_ROOT

NOTEBOOK = REPO_ROOT / "notebooks" / "walkthrough.ipynb"


def sample_options(source: str) -> dict[str, str]:
    """``--flag value`` pairs of every list literal assigned or added to ``sample_options``."""
    items: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "sample_options" for t in targets):
                items += ast.literal_eval(node.value)
    return dict(zip(items[::2], items[1::2], strict=True))


def test_the_notebooks_sample_is_the_demos() -> None:
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    sources = ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]
    [source] = [text for text in sources if "sample_options" in text]
    settings = DemoSettings()
    assert sample_options(source) == {
        "--num-classes": str(settings.num_classes),
        "--train-per-class": str(settings.train_per_class),
        "--valid-per-class": str(settings.valid_per_class),
        "--test-per-class": str(settings.test_per_class),
        "--image-size": str(settings.image_size),
    }


def test_the_reader_sees_a_changed_option() -> None:
    source = 'sample_options = ["--num-classes", "4"]\nsample_options += ["--image-size", "32"]\n'
    assert sample_options(source) == {"--num-classes": "4", "--image-size": "32"}
