"""The programs and templates tests hand to the local cloud (Lambda handlers, training scripts, SAM
templates) live as files under tests/fixtures/, where ruff and mypy see them; tests read them here."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fixture_path(relative: str) -> Path:
    path = FIXTURES / relative
    if not path.is_file():
        raise FileNotFoundError(f"no test fixture {relative} under {FIXTURES}")
    return path


def fixture_text(relative: str) -> str:
    return fixture_path(relative).read_text()
