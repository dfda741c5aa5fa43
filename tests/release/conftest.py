"""The release check's command list, printed in the terminal summary (so CI's log cites it)."""

from __future__ import annotations

import pytest

_LINES = pytest.StashKey[list[str]]()


@pytest.fixture(scope="session")
def release_summary(request: pytest.FixtureRequest) -> list[str]:
    """Lines the release check adds for the terminal summary."""
    return request.config.stash.setdefault(_LINES, [])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    lines = config.stash.get(_LINES, [])
    if lines:
        terminalreporter.section("release check: commands run from the built wheel and image")
        for line in lines:
            terminalreporter.write_line(line)
