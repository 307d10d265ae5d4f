"""notebooks/walkthrough.ipynb, top to bottom, against the suite's local cloud (issue 16, item 6).

nbclient runs the notebook as Jupyter would, in a kernel on this interpreter (.venv-sdk2: the SageMaker
SDK v2), started from notebooks/ with none of the cloud's variables set: the notebook reads the local
cloud's state file (``LOCALCLOUD_STATE_FILE`` names this suite's) as a user's kernel reads
``.localcloud/state.json``. The executed copy goes to build/notebooks/ for a reader to open, also when a
cell fails. The notebook is committed without outputs; the first test fails if it is not.
"""

from __future__ import annotations

import base64
import html
import json
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from tests.sdk.notebook import REPO

NOTEBOOK = REPO / "notebooks" / "walkthrough.ipynb"
EXECUTED = REPO / "build" / "notebooks" / NOTEBOOK.name
# Per cell: the watch cell waits for the whole pipeline (upload to InService endpoint).
CELL_TIMEOUT_S = 1200
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def code_cells_with_outputs(notebook: Any) -> list[int]:
    return [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]


def test_the_notebook_is_committed_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert code_cells_with_outputs(notebook) == [], (
        f"{NOTEBOOK.relative_to(REPO)} carries outputs: clear them before committing "
        "(the executed copy belongs in build/notebooks/)"
    )


@pytest.fixture()
def kernel_for_this_interpreter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The kernel the notebook names (``make notebook-kernel`` registers it for a user), here with
    this interpreter and found first on JUPYTER_PATH: a user's own registration, wherever it points,
    is never picked up."""
    name = str(nbformat.read(NOTEBOOK, as_version=4).metadata.kernelspec.name)
    spec_dir = tmp_path / "jupyter" / "kernels" / name
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (.venv-sdk2)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return name


def outputs_of(notebook: Any) -> list[Any]:
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]


@pytest.mark.slow
def test_the_walkthrough_runs_top_to_bottom_against_the_local_cloud(
    local_cloud: dict[str, Any], client_env: dict[str, str], kernel_for_this_interpreter: str, tmp_path: Path
) -> None:
    from dogclf import contract  # training/ is on the path (tests/sdk/notebook.py)

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert code_cells_with_outputs(notebook) == []
    state_file = tmp_path / "state.json"
    state_file.write_text(json.dumps(local_cloud))
    # A user's shell: no endpoint or credential variables (the notebook sets them from the state file);
    # the SDK's telemetry off and no ~/.aws files, as for the rest of the suite (conftest.py).
    kernel_env = {key: value for key, value in client_env.items() if key not in local_cloud["environment"]}
    kernel_env["LOCALCLOUD_STATE_FILE"] = str(state_file)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name=kernel_for_this_interpreter,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    try:
        client.execute(env=kernel_env)
    finally:
        EXECUTED.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, EXECUTED)

    outputs = outputs_of(notebook)
    assert not [output for output in outputs if output.output_type == "error"]
    printed = "".join(output.get("text", "") for output in outputs if output.output_type == "stream")
    for stage in ("ingest", "tuning job", "profiled training job", "gate", "endpoint"):
        assert f" {stage} " in printed, f"the watch cell never showed the {stage} stage:\n{printed}"
    assert "in-service" in printed
    pngs = [
        base64.b64decode(output.data["image/png"])
        for output in outputs
        if output.output_type == "display_data" and "image/png" in output.data
    ]
    assert pngs and pngs[0].startswith(PNG_MAGIC), "no loss plot shown"
    frames = [
        output.data["text/html"]
        for output in outputs
        if output.output_type == "display_data" and "text/html" in output.data
    ]
    # The report's own HTML (training/dogclf/profiling/report.py), escaped into the frame's srcdoc.
    report_heading = html.escape("<h1>Profiler report</h1>")
    shown = [frame for frame in frames if "<iframe srcdoc=" in frame and report_heading in frame]
    assert shown, "no profiler report shown"
    for rule in (contract.PROFILER_REPORT_RULE, contract.POOR_WEIGHT_INITIALIZATION):
        assert f"\n{rule} " in printed, f"no verdict of {rule} shown"
    assert "Predictor (" in printed and "invoke_endpoint: " in printed
