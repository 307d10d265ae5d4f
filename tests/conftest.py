"""Which suite this interpreter can run, so that a bare ``pytest`` from the repository root runs the right
one or names the command that does.

The repository has three test environments (docs/contracts.md): ``.venv`` runs the application suite
(everything but tests/training and tests/sdk), ``.venv-training`` runs tests/training (torch and
smdebug, as the training image has them), ``.venv-sdk2`` runs tests/sdk (SageMaker Python SDK v2).
A folder this interpreter cannot run is not collected when it was reached by walking ``tests/`` (a
note at the end of the run names the command for it); named on the command line, it is a usage error
with that command, instead of a screen of import errors.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def _sagemaker_major() -> int | None:
    try:
        return int(metadata.version("sagemaker").split(".")[0])
    except (metadata.PackageNotFoundError, ValueError):
        return None


@dataclass(frozen=True)
class Suite:
    name: str
    folders: tuple[Path, ...]
    environment: str
    command: str

    def contains(self, path: Path) -> bool:
        return any(path == folder or folder in path.parents for folder in self.folders)


TRAINING = Suite("training", (TESTS / "training",), ".venv-training", "make test-training")
SDK = Suite("sdk", (TESTS / "sdk",), ".venv-sdk2", "make test-sdk")
APP = Suite(
    "application",
    tuple(
        p
        for p in sorted(TESTS.iterdir())
        if p.is_dir() and p.name not in ("training", "sdk", "support", "fixtures", "__pycache__")
    ),
    ".venv",
    "make test-app",
)


def _runnable(suite: Suite) -> bool:
    """What each environment has and the others lack: smdebug (the training image's), SDK v2, moto."""
    if suite is TRAINING:
        return util.find_spec("smdebug") is not None
    if suite is SDK:
        return _sagemaker_major() == 2
    return util.find_spec("moto") is not None


_skipped: dict[str, Suite] = {}


def _named_paths(config: pytest.Config) -> list[Path]:
    """The paths this run collects from (the command line's, else testpaths), without node ids."""
    from_testpaths = config.args_source == pytest.Config.ArgsSource.TESTPATHS
    base = config.rootpath if from_testpaths else config.invocation_params.dir
    return [(base / arg.split("::")[0]).resolve() for arg in config.args]


def _hint(suite: Suite) -> str:
    folders = ", ".join(str(folder.relative_to(TESTS.parent)) for folder in suite.folders)
    return f"{suite.name} tests ({folders}) run in {suite.environment}: `{suite.command}`"


def pytest_addoption(parser: pytest.Parser) -> None:
    # Registered here, at the root of tests/, so that every suite's command line accepts it (an option
    # of a nested conftest is unknown to a run started on `tests`, as make test-fast-app starts it).
    parser.addoption(
        "--update-snapshots",
        action="store_true",
        help="rewrite the request snapshots (tests/fixtures/requests/*.json) from the requests the code "
        "builds now, instead of comparing (tests/functions/request_snapshots.py); review their git diff",
    )


def pytest_configure(config: pytest.Config) -> None:
    """A folder named on the command line that this interpreter cannot run: say which command can.
    Then share botocore's parsed service models across the run's sessions
    (tests/support/botocore_models.py)."""
    for suite in (TRAINING, SDK, APP):
        if not _runnable(suite) and any(suite.contains(path) for path in _named_paths(config)):
            raise pytest.UsageError(f"this interpreter ({sys.executable}) cannot run them: {_hint(suite)}")
    from tests.support.botocore_models import share_data_loaders

    share_data_loaders()


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Walking tests/: leave out the folders of the other environments (noted in the summary)."""
    for suite in (TRAINING, SDK, APP):
        if collection_path.resolve() in suite.folders and not _runnable(suite):
            # Noted only where the run asked for the folder (pytest also offers a named file's siblings).
            if any(
                path in (folder, *folder.parents) for path in _named_paths(config) for folder in suite.folders
            ):
                _skipped[suite.name] = suite
            return True
    return None


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for suite in _skipped.values():
        terminalreporter.write_line(f"not collected: {_hint(suite)}", yellow=True)
