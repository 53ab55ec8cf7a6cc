"""Root test configuration: registers every fixture module under tests/fixtures as a plugin.

Service fixtures (RocketMQ, Ollama, PostgreSQL, Chromium, SIP peers) live one per module in
``tests/fixtures/`` so each can be used by any test package.
"""

from __future__ import annotations

from pathlib import Path

pytest_plugins = sorted(
    f"tests.fixtures.{p.stem}" for p in (Path(__file__).parent / "fixtures").glob("*.py") if p.stem != "__init__"
)
