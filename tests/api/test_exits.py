"""Exits attached to an agent's positions (``portfolio.exits``) in a paper session."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.asyncio


async def test_a_session_with_exits_journals_their_fills(api: Any) -> None:
    exits = {"take_profit_pct": 0.003, "stop_loss_pct": 0.003}
    sid = await api.start_session(portfolio={"lot_size": 0.001, "exits": exits})
    state = api.manager.c.state

    async def exit_fill() -> list[Any] | None:
        fills = await state.read_journal.remote(sid, "fill")
        done = [f for f in fills if f.payload["client_order_id"].endswith(("-tp", "-sl"))]
        return done or None

    first = (await api.eventually(exit_fill, timeout=120, what="an exit fill"))[0].payload
    exit_id = first["client_order_id"]
    entry_id, kind = exit_id.rsplit("-", 1)
    sibling = f"{entry_id}-{'sl' if kind == 'tp' else 'tp'}"
    await api.stop(sid)

    journal = await state.read_journal.remote(sid, "order")
    seen = {
        cid: [e.payload["status"] for e in journal if e.key == cid]
        for cid in (entry_id, exit_id, sibling)
    }
    assert seen[entry_id][0] == "new" and "filled" in seen[entry_id]
    assert seen[exit_id][:2] == ["new", "accepted"] and seen[exit_id][-1] == "filled"
    assert seen[sibling][-1] == "cancelled"
    entry = next(e.payload for e in journal if e.key == entry_id)
    child = next(e.payload for e in journal if e.key == exit_id)
    assert child["order"]["parent_id"] == entry_id
    assert child["order"]["oco_group"] == f"{entry_id}-oco"
    assert child["order"]["side"] != entry["order"]["side"]
    # The fills, in journal order, never take the position short.
    held = 0.0
    for f in await state.read_journal.remote(sid, "fill"):
        held += f.payload["quantity"] * (1 if f.payload["side"] == "buy" else -1)
        assert held > -1e-9, f.payload
