"""Token endpoint and bearer-token rules, over real HTTP."""

from __future__ import annotations

import base64
import time
import uuid

import httpx
from emulator_wire import API, Wire, assert_api_error

from sessionforce.emulator import RunningEmulator, run_emulator


def test_token_response_has_salesforce_fields_and_points_at_the_emulator(wire: Wire, emu: RunningEmulator) -> None:
    before = int(time.time() * 1000)
    response = wire.fetch_token()
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {"access_token", "instance_url", "api_instance_url", "id", "token_type", "issued_at",
                         "signature", "scope"}
    assert body["instance_url"] == body["api_instance_url"] == emu.url
    assert body["token_type"] == "Bearer"
    assert isinstance(body["issued_at"], str)
    assert int(body["issued_at"]) >= before
    assert "expires_in" not in body  # Salesforce does not promise one


def test_wrong_credentials_answer_401_invalid_client(wire: Wire) -> None:
    for overrides in ({"client_secret": "nope"}, {"client_id": "someone-else"}):
        response = wire.fetch_token(**overrides)
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"
        assert response.json()["error_description"]


def test_unsupported_grant_type_answers_400(wire: Wire) -> None:
    response = wire.fetch_token(grant_type="password")
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_credentials_in_basic_auth_header_are_accepted(emu: RunningEmulator) -> None:
    basic = base64.b64encode(f"{emu.client_id}:{emu.client_secret}".encode()).decode()
    response = httpx.post(emu.token_url, data={"grant_type": "client_credentials"},
                          headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 200


def test_custom_client_credentials() -> None:
    with run_emulator(client_id="my-app", client_secret="s3cret") as emu:
        wire = Wire(emu)
        assert wire.fetch_token().status_code == 200
        assert (emu.client_id, emu.client_secret) == ("my-app", "s3cret")
        wire.close()


def test_api_calls_need_a_valid_bearer_token(wire: Wire, emu: RunningEmulator) -> None:
    url = f"{API}/agents/{emu.default_agent_id}/sessions"
    body = {"externalSessionKey": str(uuid.uuid4()), "instanceConfig": {"endpoint": emu.url}}
    assert_api_error(wire.http.post(url, json=body), 401, "bearer")
    assert_api_error(wire.http.post(url, json=body, headers={"Authorization": "Bearer made-up"}), 401)
    assert wire.http.post(url, json=body, headers=wire.auth).status_code == 200


def test_tokens_expire_after_their_lifetime_on_the_emulator_clock() -> None:
    with run_emulator(token_ttl=60) as emu:
        wire = Wire(emu)
        session_id = wire.session()
        wire.admin("POST", "/clock/advance", {"seconds": 59})
        assert wire.send(session_id, 1).status_code == 200
        wire.admin("POST", "/clock/advance", {"seconds": 2})
        assert_api_error(wire.send(session_id, 2), 401, "expired")
        wire.fetch_token()  # a new token works, and the session survived the refresh
        assert wire.send(session_id, 2).status_code == 200
        wire.close()


def test_admin_can_expire_every_token(wire: Wire) -> None:
    session_id = wire.session()
    assert wire.admin("POST", "/tokens/expire")["expired"] == 1
    assert_api_error(wire.send(session_id, 1), 401)
    wire.fetch_token()
    assert wire.send(session_id, 1).status_code == 200
