"""``AbandonedClaimSweeper`` on a real SQLite ledger and presence table: a prompt claimed by a node that
died (its presence row of the user stopped being refreshed) is released by a surviving node and spoken in
the user's call there, or held for the user's next call; a claim whose node still holds the user's call is
left alone. (The same with real nodes, a real kill and real audio: tests/faults/test_node_faults.py.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

from messaging.schemas import ProactivePrompt
from server.proactive import ProactivePromptConsumer
from server.proactive.abandoned_claims import AbandonedClaimSweeper
from server.storage.delivery_ledger import open_delivery_ledger
from server.storage.presence import SqlPresence
from tests.messaging.harness import unique
from tests.server.proactive.fakes import FakeLiveCall, FakeSessionDirectory


def _prompt(user: str) -> ProactivePrompt:
    return ProactivePrompt(idempotency_key=unique("k"), user_id=user, text="Your parcel is here.")


async def test_a_dead_nodes_claims_are_spoken_by_a_survivor_or_held(tmp_path: Path) -> None:
    now = [1000.0]
    ledger = open_delivery_ledger(tmp_path / "ledger.sqlite3", clock=lambda: now[0])
    presence = SqlPresence(ledger.engine, ledger.clock)
    back_here, gone, talking = FakeLiveCall("ann"), "bob", FakeLiveCall("cy")
    # node-dead claimed prompts for ann and bob while they talked to it; node-live speaks to cy.
    await presence.join("call-ann", "ann", "node-dead")
    await presence.join("call-bob", "bob", "node-dead")
    await presence.join("call-cy", "cy", "node-live")
    for_ann, for_bob, for_cy = _prompt("ann"), _prompt(gone), _prompt("cy")
    for prompt, node in ((for_ann, "node-dead"), (for_bob, "node-dead"), (for_cy, "node-live")):
        assert await ledger.claim(prompt, node) is None
    survivor = ProactivePromptConsumer(
        None,  # type: ignore[arg-type]  # no bus: the sweeper hands prompts to act_on directly
        FakeSessionDirectory(back_here),  # ann called again and reached the survivor
        ledger,
        node_id="node-live",
    )
    sweeper = AbandonedClaimSweeper(
        presence, survivor, "node-live", window_s=15, interval_s=5, clock=ledger.clock
    )
    assert await sweeper.sweep() == []  # every claimant's rows are fresh
    now[0] = 1020.0
    await presence.refresh("node-live", [("call-cy", "cy")])  # node-dead stopped refreshing
    released = await sweeper.sweep()
    assert sorted(p.user_id for p in released) == ["ann", "bob"]
    await asyncio.gather(*sweeper.tasks)  # acting on the released prompts
    assert back_here.spoken == [(for_ann.text, for_ann.message_id)]
    statuses = {p.user_id: (await ledger.get(p.idempotency_key)).status for p in (for_ann, for_bob, for_cy)}  # type: ignore[union-attr]
    assert statuses == {"ann": "delivered", "bob": "pending", "cy": "claimed"}
    assert talking.spoken == []  # node-live is still speaking it: not taken from it
    assert await sweeper.sweep() == []  # each release happens once
    await sweeper.stop()
    ledger.close()
