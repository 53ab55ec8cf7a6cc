"""Hypothesis strategies for hostile input: any JSON value, and a valid JSON object with its fields
dropped, replaced by any JSON value or joined by unknown ones (the mistakes and attacks a parser meets)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=16,
)


@st.composite
def mutated(draw: st.DrawFn, valid: dict[str, Any]) -> dict[str, Any]:
    """``valid`` with each field kept, dropped or replaced, plus a few unknown fields."""
    out: dict[str, Any] = {}
    for key, value in valid.items():
        action = draw(st.sampled_from(("keep", "keep", "drop", "replace")))
        if action == "keep":
            out[key] = value
        elif action == "replace":
            out[key] = draw(json_values)
    out.update(draw(st.dictionaries(st.text(max_size=12), json_values, max_size=2)))
    return out
