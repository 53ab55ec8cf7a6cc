"""The registry of live calls on a node."""

from __future__ import annotations

from server.calls.registry import SessionRegistry


class _Call:
    def __init__(self, call_id: str, user_id: str | None) -> None:
        self.call_id, self.user_id = call_id, user_id


def test_registry_finds_the_latest_call_of_a_user() -> None:
    registry = SessionRegistry()
    a, b, c = _Call("a", "u1"), _Call("b", "u1"), _Call("c", None)
    for call in (a, b, c):
        registry.register(call)  # type: ignore[arg-type]
    assert registry.find_by_user("u1") is b and registry.get("c") is c and len(registry) == 3
    registry.unregister(b)  # type: ignore[arg-type]
    assert registry.find_by_user("u1") is a
    registry.unregister(a)  # type: ignore[arg-type]
    assert registry.find_by_user("u1") is None and not registry.is_online("u1")
