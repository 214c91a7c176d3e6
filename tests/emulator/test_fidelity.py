"""Issue 14, the emulator side: tokens like Salesforce's, its leniency, strict mode, and its failure modes."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from emulator_wire import API, Wire, assert_api_error

from sessionforce.emulator import FaultConfigError, RunningEmulator, run_emulator

EMPLOYEE = {"id": "0XxEMP000000000001", "name": "Helpdesk", "type": "employee",
            "topics": [{"keywords": ["hi"], "reply": "Hello, colleague."}]}
BROKEN = {"id": "0XxBRK000000000001", "name": "Broken Planner", "invalid_config": True}
INACTIVE = {"id": "0XxOFF000000000001", "name": "Retired Bot", "active": False}


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def _start_body(emu: RunningEmulator, **extra: Any) -> dict[str, Any]:
    return {"externalSessionKey": str(uuid.uuid4()), "instanceConfig": {"endpoint": emu.url}, **extra}


# --- tokens -----------------------------------------------------------------------------------
def test_tokens_are_jwt_shaped_with_plausible_claims(wire: Wire, emu: RunningEmulator) -> None:
    before = int(time.time())
    body = wire.fetch_token().json()
    token = body["access_token"]
    header_segment, _, signature = token.split(".")
    assert len(token) > 800
    assert all(c.isalnum() or c in "-_" for c in token.replace(".", ""))
    header = json.loads(base64.urlsafe_b64decode(header_segment + "=" * (-len(header_segment) % 4)))
    assert (header["alg"], header["typ"], header["tty"]) == ("RS256", "JWT", "sfdc-core-token")
    claims = _claims(token)
    assert claims["iss"] == emu.url
    assert claims["aud"] == [body["api_instance_url"]]
    assert claims["client_id"] == emu.client_id
    assert set(claims["scp"].split()) >= {"api", "chatbot_api", "sfap_api"}
    assert before <= claims["iat"] <= claims["exp"] - 7200 + 1
    assert body["token_format"] == "jwt"
    assert set(body) >= {"access_token", "api_instance_url", "instance_url", "id", "scope", "signature",
                         "token_type", "issued_at"}
    assert int(body["issued_at"]) >= before * 1000
    assert len(base64.urlsafe_b64decode(signature + "==")) == 256


def test_opaque_tokens_get_the_agent_api_404_but_work_on_the_org_rest_api() -> None:
    with run_emulator(token_format="opaque") as emu:
        wire = Wire(emu)
        body = wire.fetch_token().json()
        assert body["access_token"].count(".") == 0
        assert len(body["access_token"]) < 200
        assert "token_format" not in body
        error = assert_api_error(wire.start(), 404)
        assert error["error"] == "NotFoundException"
        query = wire.http.get("/services/data/v62.0/query", headers=wire.auth,
                              params={"q": "SELECT Id FROM BotDefinition"})
        assert query.status_code == 200
        assert emu.counters()["requests"]["start_session 404"] == 1
        wire.close()


# --- leniency and strict mode -----------------------------------------------------------------
@pytest.mark.sessionforce_emulator(strict=False)
def test_lenient_by_default_like_salesforce_with_every_deviation_recorded(wire: Wire, emu: RunningEmulator) -> None:
    start = wire.start(body=_start_body(emu, bypassUser="true", streamingCapabilities={"chunkTypes": ["Text"]}))
    assert start.status_code == 200, start.text
    session_id = start.json()["sessionId"]
    # No variables, a sequenceId jump, a sequenceId as text: accepted.
    for sequence_id in (5, "1000"):
        response = wire.http.post(f"{API}/sessions/{session_id}/messages", headers=wire.auth,
                                  json={"message": {"sequenceId": sequence_id, "type": "Text", "text": "hi"}})
        assert response.status_code == 200, response.text
    assert_api_error(wire.send(session_id, 1000), 400, "greater than the last accepted sequenceId (1000)")
    assert wire.end(session_id, None).status_code == 200  # no x-session-end-reason
    deviations = wire.admin("GET", "/deviations")
    assert deviations["strict"] is False
    found = [(d["route"], d["deviation"]) for d in deviations["deviations"]]
    assert [route for route, _ in found] == ["start_session", "send_message", "end_session"]
    assert "'bypassUser' is the string 'true'" in found[0][1]
    assert "'message.sequenceId' is the string '1000'" in found[1][1]
    assert "x-session-end-reason" in found[2][1]
    assert emu.deviations() == deviations["deviations"]
    wire.admin("DELETE", "/deviations")
    assert wire.admin("GET", "/deviations")["deviations"] == []


@pytest.mark.parametrize(("change", "fragment"), [
    ({"bypassUser": "true"}, "'bypassUser' is the string 'true'"),
    ({"userId": "005xx"}, "unknown field 'userId'"),
    ({"externalSessionKey": "my-key"}, "'externalSessionKey' 'my-key' is not a UUID"),
    ({"streamingCapabilities": {"chunkTypes": ["Html"]}}, "chunkTypes"),
    ({"variables": [{"name": "x", "type": "Text", "value": "v", "label": "X"}]}, "unknown field 'variables[0].label'"),
])
def test_strict_mode_rejects_each_deviation_naming_it(wire: Wire, emu: RunningEmulator, change: dict[str, Any],
                                                      fragment: str) -> None:
    assert wire.admin("GET", "/strict") == {"strict": True}  # the fixture flag: strict in our own tests
    response = wire.start(body=_start_body(emu, **change))
    assert_api_error(response, 400, "Strict mode", fragment)
    [recorded] = wire.admin("GET", "/deviations")["deviations"]
    assert fragment in recorded["deviation"]


def test_strict_mode_covers_turns_streams_and_feedback(wire: Wire) -> None:
    session_id = wire.session()
    turn = {"message": {"sequenceId": 1, "type": "Text", "text": "hi", "role": "user"}}
    assert_api_error(wire.http.post(f"{API}/sessions/{session_id}/messages", json=turn, headers=wire.auth),
                     400, "unknown field 'message.role'")
    plain = {"message": {"sequenceId": 1, "type": "Text", "text": "hi"}}
    assert_api_error(wire.http.post(f"{API}/sessions/{session_id}/messages/stream", json=plain, headers=wire.auth),
                     400, "text/event-stream")
    context = {**plain, "variables": [{"name": "$Context.AccountId", "type": "Text", "value": "001"}]}
    assert_api_error(wire.http.post(f"{API}/sessions/{session_id}/messages", json=context, headers=wire.auth),
                     400, "fixed after start")
    reply = wire.send(session_id, 1, "what are your opening hours?").json()["messages"][0]
    feedback = {"feedbackId": reply["feedbackId"], "feedback": "GOOD", "rating": 5}
    assert_api_error(wire.feedback(session_id, feedback), 400, "unknown field 'rating'")
    assert len(wire.admin("GET", "/deviations")["deviations"]) == 4


def test_strict_mode_can_be_switched_at_runtime(wire: Wire, emu: RunningEmulator) -> None:
    body = _start_body(emu, bypassUser="false")
    assert wire.start(body=body).status_code == 400
    assert wire.admin("PUT", "/strict", {"strict": False}) == {"strict": False}
    assert wire.start(body=body).status_code == 200
    assert wire.http.put("/__emulator/strict", json={"strict": "yes"}).status_code == 400


def test_a_body_not_declared_json_gets_the_real_unsupported_media_type_500(wire: Wire, emu: RunningEmulator) -> None:
    body = json.dumps(_start_body(emu))
    response = wire.http.post(f"{API}/agents/{emu.default_agent_id}/sessions", content=body,
                              headers={**wire.auth, "Content-Type": "text/plain"})
    error = assert_api_error(response, 500, "Unsupported Media Type")
    assert error["error"] == "HttpMediaTypeNotSupportedException"
    ok = wire.http.post(f"{API}/agents/{emu.default_agent_id}/sessions", content=body,
                        headers={**wire.auth, "Content-Type": "application/json; charset=utf-8"})
    assert ok.status_code == 200


# --- failure modes ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def org() -> Any:
    with run_emulator(agents=[EMPLOYEE, BROKEN, INACTIVE], request_timeout=0.3, strict=True) as emu:
        yield emu


def test_employee_agent_refuses_bypass_user_true_with_invalid_user_id(org: RunningEmulator) -> None:
    wire = Wire(org)
    error = assert_api_error(wire.start(EMPLOYEE["id"]), 400, "Invalid user ID provided on start session")
    assert error["error"] == "AgentApiException"
    response = wire.start(EMPLOYEE["id"], body={**_start_body(org), "bypassUser": False})
    assert response.status_code == 200
    assert response.json()["messages"][0]["type"] == "Inform"
    assert wire.start(EMPLOYEE["id"], body=_start_body(org)).status_code == 200  # absent = false
    wire.close()


def test_broken_planner_config_answers_412_invalid_config(org: RunningEmulator) -> None:
    wire = Wire(org)
    assert_api_error(wire.start(BROKEN["id"]), 412, "Invalid Config")
    wire.close()


def test_inactive_and_unknown_agents(org: RunningEmulator) -> None:
    wire = Wire(org)
    assert_api_error(wire.start(INACTIVE["id"]), 404, "Agent not found")
    assert_api_error(wire.start("0XxNOSUCHAGENT0000"), 404, "Agent not found")
    error = assert_api_error(wire.start("Helpdesk"), 400, "Helpdesk is not a valid agent ID")
    assert error["error"] == "BadRequestException"
    wire.close()


@pytest.mark.parametrize("endpoint", ["https://api.salesforce.com", "https://api.gov.salesforce.com/"])
def test_api_host_as_instance_endpoint_is_engine_config_lookup_500(org: RunningEmulator, endpoint: str) -> None:
    wire = Wire(org)
    body = {**_start_body(org), "instanceConfig": {"endpoint": endpoint}}
    error = assert_api_error(wire.start(EMPLOYEE["id"], body=body), 500, endpoint)
    assert error["error"] == "EngineConfigLookupException"
    wire.close()


def test_a_turn_past_the_request_timeout_answers_500_after_it(org: RunningEmulator) -> None:
    wire = Wire(org)
    session_id = wire.start(EMPLOYEE["id"], body=_start_body(org)).json()["sessionId"]
    wire.admin("PUT", "/faults", {"rules": [{"route": "send_message", "latency_ms": 2000},
                                            {"route": "stream_message", "latency_ms": 2000}]})
    started = time.perf_counter()
    error = assert_api_error(wire.send(session_id, 1, "hi"), 500, "did not answer within 0.3 seconds")
    assert 0.25 <= time.perf_counter() - started < 1.5
    assert error["error"] == "HttpServerErrorException"
    # The turn had been accepted (the agent may have acted), and the session is usable again.
    assert [t["sequenceId"] for t in wire.admin("GET", "/counters")["turns"]] == [1]
    response, events = wire.stream(session_id, 2, "hi")
    assert response.status_code == 200
    assert [e["event"] for e in events] == ["ProgressIndicator", "Error"]
    assert events[1]["data"]["message"]["httpStatus"] == 500
    wire.admin("DELETE", "/faults")
    assert wire.send(session_id, 3, "hi").status_code == 200
    wire.close()


@pytest.mark.parametrize(("name", "status", "error"), [
    ("invalid_user", 400, "AgentApiException"), ("invalid_config", 412, "PreconditionFailedException"),
    ("engine_config", 500, "EngineConfigLookupException"), ("opaque_token", 404, "NotFoundException"),
])
def test_faults_inject_the_real_failures_by_name(wire: Wire, name: str, status: int, error: str) -> None:
    wire.admin("PUT", "/faults", {"rules": [{"route": "start_session", "error": name, "times": 1}]})
    assert assert_api_error(wire.start(), status)["error"] == error
    assert wire.start().status_code == 200


def test_fault_error_names_are_checked(emu: RunningEmulator) -> None:
    with pytest.raises(FaultConfigError, match="error: expected one of"):
        emu.set_faults({"rules": [{"route": "start_session", "error": "gremlins"}]})
    with pytest.raises(FaultConfigError, match="'status' or 'error'"):
        emu.set_faults({"rules": [{"route": "start_session", "error": "timeout", "status": 500}]})


# --- a separate Agent API host (sandbox / scratch orgs) -----------------------------------------
def test_separate_api_host_is_named_by_the_token_and_required() -> None:
    with run_emulator(separate_api_host=True, strict=True) as emu:
        assert emu.api_url != emu.url
        token = httpx.post(f"{emu.url}/services/oauth2/token", data={
            "grant_type": "client_credentials", "client_id": emu.client_id, "client_secret": emu.client_secret}).json()
        assert (token["instance_url"], token["api_instance_url"]) == (emu.url, emu.api_url)
        auth = {"Authorization": f"Bearer {token['access_token']}"}
        body = _start_body(emu)
        # The Agent API on the My Domain host: the HTML 404 a My Domain answers to an unknown path.
        wrong = httpx.post(f"{emu.url}{API}/agents/{emu.default_agent_id}/sessions", json=body, headers=auth)
        assert wrong.status_code == 404
        assert "URL No Longer Exists" in wrong.text
        right = httpx.post(f"{emu.api_url}{API}/agents/{emu.default_agent_id}/sessions", json=body, headers=auth)
        assert right.status_code == 200, right.text
        assert right.json()["_links"]["messages"]["href"].startswith(emu.api_url)
        # The org's own routes are not on the API host; instanceConfig.endpoint = API host is the real 500.
        assert httpx.post(f"{emu.api_url}/services/oauth2/token", data={}).status_code == 404
        api_as_endpoint = {**body, "externalSessionKey": str(uuid.uuid4()), "instanceConfig": {"endpoint": emu.api_url}}
        error = httpx.post(f"{emu.api_url}{API}/agents/{emu.default_agent_id}/sessions", json=api_as_endpoint,
                           headers=auth)
        assert error.status_code == 500
        assert error.json()["error"] == "EngineConfigLookupException"

