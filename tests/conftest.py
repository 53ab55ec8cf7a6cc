"""Root test configuration: registers every fixture module under tests/fixtures as a plugin.

Service fixtures (RocketMQ, Ollama, PostgreSQL, Chromium, SIP peers) live one per module in
``tests/fixtures/`` so each can be used by any test package.
"""

from __future__ import annotations

from pathlib import Path

import hypothesis  # noqa: F401 - imported before assertion rewriting: on 3.11 a late import can crash it

pytest_plugins = sorted(
    f"tests.fixtures.{p.stem}" for p in (Path(__file__).parent / "fixtures").glob("*.py") if p.stem != "__init__"
)


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    from tests.fixtures import SERVICE_STARTUP_SECONDS

    if SERVICE_STARTUP_SECONDS:
        terminalreporter.section("service start-up")
        for name, seconds in sorted(SERVICE_STARTUP_SECONDS.items()):
            terminalreporter.write_line(f"{name:<12} up in {seconds:6.1f} s")
