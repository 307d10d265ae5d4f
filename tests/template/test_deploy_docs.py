"""docs/deploy.md's commands work as written: a synchronous `aws lambda invoke` of the URL import
must neither time out at the CLI's 60 s read timeout nor be retried by the CLI while the first run
still imports (each run would upload its own version, a new dataset)."""

from __future__ import annotations

import re

from template_loader import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def invoke_commands(text: str) -> list[str]:
    """Each `aws lambda invoke` command, its continuation lines (a trailing backslash) joined."""
    lines = [line.lstrip("# ").rstrip() for line in text.splitlines()]
    commands, current = [], ""
    for line in lines:
        if current or "aws lambda invoke" in line:
            current += " " + line.rstrip("\\")
            if not line.endswith("\\"):
                commands.append(current)
                current = ""
    return commands


def test_every_documented_import_invoke_waits_once_or_does_not_wait():
    found = []
    for path in DOCS:
        for command in invoke_commands(path.read_text()):
            if "ImportUrlFunction" not in command:
                continue
            found.append(command)
            asynchronous = re.search(r"--invocation-type\s+Event\b", command)
            one_blocking_attempt = "--cli-read-timeout 0" in command and "AWS_MAX_ATTEMPTS=1" in command
            assert asynchronous or one_blocking_attempt, (path.name, command)
    assert len(found) >= 2, found  # the synchronous form and the asynchronous one
