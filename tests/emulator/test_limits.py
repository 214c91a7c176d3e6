"""Limits as settings: concurrent sessions and requests per minute answer 429 with Retry-After."""

from __future__ import annotations

from emulator_wire import Wire, assert_api_error

from sessionforce.emulator import run_emulator


def test_max_sessions() -> None:
    with run_emulator(max_sessions=2, idle_timeout=100) as emu:
        wire = Wire(emu)
        first, _second = wire.session(), wire.session()
        response = wire.start()
        assert_api_error(response, 429, "limit is 2")
        assert int(response.headers["retry-after"]) >= 1
        wire.end(first)
        third = wire.session()  # ending one frees a slot
        wire.admin("POST", "/clock/advance", {"seconds": 101})
        assert wire.start().status_code == 200  # idle sessions expired and freed theirs
        assert_api_error(wire.send(third, 1), 404)
        wire.close()


def test_requests_per_minute() -> None:
    with run_emulator(requests_per_minute=3) as emu:
        wire = Wire(emu)
        sid = wire.session()  # 1
        assert wire.send(sid, 1).status_code == 200  # 2
        assert wire.send(sid, 2).status_code == 200  # 3
        response = wire.send(sid, 3)
        assert_api_error(response, 429, "3 requests per minute")
        assert 1 <= int(response.headers["retry-after"]) <= 60
        assert wire.fetch_token().status_code == 200  # the token endpoint is not rate limited
        wire.admin("POST", "/clock/advance", {"seconds": 60})
        assert wire.send(sid, 3).status_code == 200  # the rejected sequenceId was not consumed
        wire.close()
