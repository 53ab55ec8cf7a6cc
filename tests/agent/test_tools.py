"""Tool argument rules and trigger matching (pure logic)."""

from __future__ import annotations

import pytest

from agent.config import AgentConfig
from agent.conversation import Conversation
from agent.tools import ToolBox, arguments_from_text, callback_minutes
from tests.agent.fakes import FakeLLM


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("call me back in two hours", 120),
        ("in 30 minutes please", 30),
        ("maybe in half an hour?", 30),
        ("tomorrow would be best", 1440),
        ("in an hour", 60),
        ("call me back later", None),
    ],
)
def test_callback_minutes(text: str, minutes: int | None) -> None:
    assert callback_minutes(text) == minutes


def test_arguments_fall_back_to_the_default_delay() -> None:
    args = arguments_from_text("schedule_callback", "call me back later", 60, "support")
    assert args == {"minutes_from_now": 60, "reason": "call me back later"}


class FakeCallControl:
    async def end_call(self) -> None: ...

    async def transfer(self, target: str) -> None: ...


def test_triggers_match_whole_words_only() -> None:
    conversation = Conversation(FakeLLM(["x"]), AgentConfig(), tools=ToolBox(call_control=FakeCallControl()))
    assert conversation._forced_tool("Maybe later.") is None
    assert conversation._forced_tool("ok, bye!") is not None
    assert conversation._forced_tool("Can I talk to a human?").name == "transfer"  # type: ignore[union-attr]
