"""Anonymous callers: a caller nobody authenticated gets a fresh random user id of its own.

Nothing unauthenticated chooses a user: an unknown phone number, or a caller without a verified identity,
is ``anonymous-<128 random bits>``. Such an id matches nobody's memory or held prompts, and the agent keeps
no long-term memory for it (``is_anonymous``), so nothing piles up under ids nobody can call again.
"""

from __future__ import annotations

import uuid

PREFIX = "anonymous-"


def anonymous_user_id() -> str:
    return PREFIX + uuid.uuid4().hex


def is_anonymous(user_id: str | None) -> bool:
    return user_id is None or user_id.startswith(PREFIX)
