"""The gateway's shared state, one contract for every backend (memory, SQLite, a real Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from sessionforce.gateway._state import GatewayState, open_state, sibling_path


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


Opener = Callable[..., GatewayState]


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens states on one backend; two opened with different origins behave like two processes."""
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/sessions.db"
    else:
        redis_url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
        url = f"{redis_url}?prefix={prefix}"
    opened: list[GatewayState] = []

    def open_one(origin: str = "a", clock: Callable[[], float] | None = None, **options: object) -> GatewayState:
        state = open_state(url, origin=origin, clock=clock, **options)  # type: ignore[arg-type]
        opened.append(state)
        return state

    yield open_one
    for state in opened:
        await state.aclose()


async def test_appends_get_consecutive_ids_per_conversation(opener: Opener) -> None:
    state = opener()
    result = await state.append({"c1": [("a", '{"n":1}', "m1"), ("b", '{"n":2}', "m1")], "c2": [("x", "{}", "")]})
    assert result == {"c1": 2, "c2": 1}
    assert await state.append({"c1": [("c", "{}", "m2")]}) == {"c1": 3}
    events = await state.read("c1", 0, 100)
    assert [(e.id, e.type, e.data, e.turn) for e in events] == [
        (1, "a", '{"n":1}', "m1"), (2, "b", '{"n":2}', "m1"), (3, "c", "{}", "m2")]
    assert [e.id for e in await state.read("c1", 1, 1)] == [2]
    assert await state.read("c1", 3, 10) == []
    assert await state.last_id("c1") == 3
    assert await state.last_id("nobody") == 0
    assert await state.read("nobody", 0, 10) == []


async def test_retention_drops_old_events_but_never_reuses_ids(opener: Opener) -> None:
    state = opener(event_retention=5)
    for n in range(0, 300, 10):
        await state.append({"c": [("e", f'{{"n":{n + k}}}', "") for k in range(10)]})
    kept = await state.read("c", 0, 1000)
    assert kept[-1].id == 300
    # Redis trims whole stream nodes (MAXLEN ~, 100 entries a node): approximately, never below the bound.
    assert 5 <= len(kept) <= 200
    assert [e.id for e in kept] == list(range(301 - len(kept), 301))
    assert await state.last_id("c") == 300


async def test_a_message_id_is_claimed_once(opener: Opener) -> None:
    clock = Clock()
    state = opener(clock=clock)
    await state.append({"c": [("e", "{}", "")]})
    won, claim = await state.claim("c", "m1", "fp", "owner-1", 30)
    assert won
    assert claim.state == "running"
    assert claim.after == 1
    assert claim.owner == "owner-1"
    won2, seen = await state.claim("c", "m1", "fp", "owner-2", 30)
    assert not won2
    assert seen.owner == "owner-1"
    assert seen.state == "running"
    assert seen.after == 1
    assert not await state.settle("c", "m1", "owner-2", '{"x":1}')  # not its claim
    assert await state.renew("c", "m1", "owner-1", 30)
    assert await state.settle("c", "m1", "owner-1", '{"status":200}')
    done = await state.message("c", "m1")
    assert done is not None
    assert done.state == "done"
    assert done.outcome == '{"status":200}'
    assert done.fingerprint == "fp"
    assert not await state.renew("c", "m1", "owner-1", 30)  # done: nothing to renew
    assert not await state.settle("c", "m1", "owner-1", '{"other":1}')
    assert (await state.message("c", "m1")).outcome == '{"status":200}'  # type: ignore[union-attr]


async def test_a_dropped_claim_can_be_claimed_again(opener: Opener) -> None:
    state = opener()
    assert (await state.claim("c", "m", "fp", "o1", 30))[0]
    assert await state.settle("c", "m", "o1", None)
    assert await state.message("c", "m") is None
    assert (await state.claim("c", "m", "fp", "o2", 30))[0]


async def test_take_over_only_once_the_owner_is_gone(opener: Opener) -> None:
    clock = Clock()
    state = opener(clock=clock)
    await state.claim("c", "m", "fp", "dead", 10)
    assert not await state.renew("c", "m", "dead", 10, take_over_as="taker")  # still alive
    clock.now += 11
    assert await state.renew("c", "m", "dead", 10, take_over_as="taker")
    assert not await state.renew("c", "m", "dead", 10, take_over_as="other")  # taken already
    claim = await state.message("c", "m")
    assert claim is not None
    assert claim.owner == "taker"
    assert claim.state == "running"
    assert claim.expires_at == pytest.approx(clock.now + 10)
    assert not await state.settle("c", "m", "dead", '{"t":0}')  # the old owner lost it
    assert await state.settle("c", "m", "taker", '{"t":1}')
    assert (await state.message("c", "m")).outcome == '{"t":1}'  # type: ignore[union-attr]


async def test_rate_windows(opener: Opener) -> None:
    clock = Clock()
    state = opener(clock=clock)
    for _ in range(3):
        assert await state.hit([("user:u", 3, 60), ("ip:1", 100, 60)]) is None
    wait = await state.hit([("user:u", 3, 60), ("ip:1", 100, 60)])
    assert wait is not None
    assert 0 < wait <= 60
    assert await state.hit([("user:v", 3, 60)]) is None  # another key, its own window


async def test_one_runner_per_job(opener: Opener) -> None:
    state = opener()
    assert await state.try_job("reap", "a", 30)
    assert not await state.try_job("reap", "b", 30)


async def test_other_processes_hear_of_appends(opener: Opener, request: pytest.FixtureRequest) -> None:
    if "memory" in request.node.name:
        pytest.skip("memory:// is one process by definition")
    writer, listener = opener("writer"), opener("listener")
    heard: list[str | None] = []
    changed = asyncio.Event()

    def on_change(conversation_id: str | None) -> None:
        heard.append(conversation_id)
        changed.set()

    task = asyncio.create_task(listener.listen(on_change))
    try:
        async with asyncio.timeout(10):
            await changed.wait()  # the first report: "look again" once listening
            assert heard == [None]
            changed.clear()
            await listener.append({"own": [("e", "{}", "")]})  # its own appends are not reported back
            await writer.append({"c9": [("e", "{}", "")]})
            while "c9" not in heard:
                changed.clear()
                await changed.wait()
        assert "own" not in heard
    finally:
        task.cancel()


def test_sqlite_state_lives_beside_the_store() -> None:
    assert sibling_path("/data/sessions.db") == Path("/data/sessions-gateway.db")
    assert sibling_path("/data/sessions") == Path("/data/sessions-gateway.db")
