"""Agents by name (issue 14): API name or label to id through the org's REST query, the agent's type
deciding bypassUser, and the certain diagnoses the wire's errors carry. Against the emulator (strict)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sessionforce import AgentClient, AsyncAgentClient, BadRequest, ConfigError, NotFound, ServerError
from sessionforce.agent_api import AgentInfo
from sessionforce.emulator import RunningEmulator, run_emulator
from sessionforce.errors import PermissionDenied
from sessionforce.lifecycle import Conversations
from sessionforce.store import MemoryStore
from tests.support import Admin, client_kwargs

AGENTS: list[dict[str, Any]] = [
    {"id": "0XxSVC000000000001", "name": "Service Assistant", "api_name": "Service_Assistant"},
    {"id": "0XxEMP000000000001", "name": "Helpdesk", "type": "employee",
     "topics": [{"keywords": ["hi"], "reply": "Hello, colleague."}]},
    {"id": "0XxTW0000000000001", "name": "Twin", "api_name": "Twin_One"},
    {"id": "0XxTW0000000000002", "name": "Twin", "api_name": "Twin_Two"},
    {"id": "0XxBRK000000000001", "name": "Broken", "invalid_config": True},
    {"id": "0XxOFF000000000001", "name": "Retired", "active": False},
]


@pytest.fixture(scope="module")
def org() -> Iterator[RunningEmulator]:
    with run_emulator(agents=AGENTS, strict=True) as emu:
        yield emu


@pytest.fixture
def admin(org: RunningEmulator) -> Iterator[Admin]:
    org.reset()
    org.set_strict(True)
    a = Admin(org.url)
    yield a
    a.http.close()


def kwargs(emu: RunningEmulator, **overrides: Any) -> dict[str, Any]:
    return {**client_kwargs(emu), **overrides}


async def test_an_api_name_resolves_once_per_client(org: RunningEmulator, admin: Admin) -> None:
    async with AsyncAgentClient(**kwargs(org, agent_id="Service_Assistant")) as client:
        first = await client.start_session()
        second = await client.start_session()
    assert first.agent_id == second.agent_id == "0XxSVC000000000001"
    assert admin.requests("query") == 1  # cached per client
    assert admin.requests("start_session", 200) == 2


async def test_a_label_resolves_when_no_api_name_matches(org: RunningEmulator, admin: Admin) -> None:
    async with AsyncAgentClient(**kwargs(org)) as client:
        info = await client.find_agent("Service Assistant")
    assert info == AgentInfo(id="0XxSVC000000000001", api_name="Service_Assistant", label="Service Assistant",
                             agent_type="AgentforceServiceAgent", active=True)
    assert (info.employee, info.bypass_user) == (False, True)


async def test_an_id_is_used_as_is_without_a_query(org: RunningEmulator, admin: Admin) -> None:
    async with AsyncAgentClient(**kwargs(org, agent_id="0XxSVC000000000001")) as client:
        session = await client.start_session()
        looked_up = await client.find_agent(lookup=True)
    assert session.agent_id == "0XxSVC000000000001"
    assert admin.requests("query") == 1  # only the explicit lookup
    assert looked_up.api_name == "Service_Assistant"


async def test_employee_agents_by_name_start_as_the_tokens_user(org: RunningEmulator, admin: Admin) -> None:
    async with AsyncAgentClient(**kwargs(org)) as client:
        session = await client.start_session("Helpdesk")  # bypassUser=false, chosen by its type
        assert session.greeting.text
        with pytest.raises(BadRequest) as caught:  # an explicit true wins, and fails as it does on Salesforce
            await client.start_session("Helpdesk", bypass_user=True)
    message = str(caught.value)
    assert "Invalid user ID provided on start session" in message
    assert "Cause: the agent is an employee agent" in message
    assert "bypass_user=False" in message
    assert admin.requests("start_session", 200) == 1


async def test_an_employee_agent_by_id_gets_the_diagnosis(org: RunningEmulator, admin: Admin) -> None:
    async with AsyncAgentClient(**kwargs(org)) as client:
        with pytest.raises(BadRequest, match="Cause: the agent is an employee agent"):
            await client.start_session("0XxEMP000000000001")
        assert (await client.start_session("0XxEMP000000000001", bypass_user=False)).session_id


async def test_conversations_accept_a_name_and_follow_the_type(org: RunningEmulator, admin: Admin) -> None:
    client = AsyncAgentClient(**kwargs(org, agent_id="Helpdesk"))
    async with client, Conversations(client, store=MemoryStore()) as conversations, \
            conversations.get("c-1") as conversation:
        reply = await conversation.send("hi")
    assert reply.text == "Hello, colleague."
    assert [t["sessionId"] for t in admin.turns()]
    assert admin.requests("query") == 1


@pytest.mark.parametrize(("name", "fragment"), [
    ("Nope", "No agent in the org has the API name or label 'Nope'"),
    ("Twin", "Several agents are labelled 'Twin' (Twin_One, Twin_Two)"),
    ("O'Brien \\ x", "No agent in the org has the API name or label"),  # quoted safely in the SOQL
])
async def test_unknown_or_ambiguous_names_are_config_errors_and_nothing_starts(
        org: RunningEmulator, admin: Admin, name: str, fragment: str) -> None:
    async with AsyncAgentClient(**kwargs(org)) as client:
        with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
            await client.start_session(name)
    assert admin.requests("start_session") == 0


async def test_an_api_name_beats_a_label(org: RunningEmulator, admin: Admin) -> None:
    async with AsyncAgentClient(**kwargs(org)) as client:
        assert (await client.find_agent("Twin_Two")).id == "0XxTW0000000000002"


async def test_a_refused_lookup_says_which_scope_is_missing(org: RunningEmulator, admin: Admin) -> None:
    admin.faults({"route": "query", "status": 403})
    async with AsyncAgentClient(**kwargs(org)) as client:
        with pytest.raises(PermissionDenied, match="'api' OAuth scope"):
            await client.start_session("Service_Assistant")
        assert (await client.start_session("0XxSVC000000000001")).session_id  # an id needs no lookup


def test_the_blocking_client_finds_agents(org: RunningEmulator, admin: Admin) -> None:
    with AgentClient(**kwargs(org)) as client:
        assert client.find_agent("Helpdesk").employee is True


# --- the certain diagnoses the wire's own errors carry ------------------------------------------
def test_an_opaque_token_404_names_the_cause() -> None:
    with run_emulator(token_format="opaque", strict=True) as emu, AgentClient(**kwargs(emu)) as client, \
            pytest.raises(NotFound) as caught:
        client.start_session()
    assert "Cause: the access token is opaque" in str(caught.value)
    assert "(JWT)-based access tokens" in str(caught.value)


async def test_invalid_config_and_engine_config_name_their_causes(org: RunningEmulator, admin: Admin) -> None:
    async with AsyncAgentClient(**kwargs(org)) as client:
        with pytest.raises(BadRequest, match="Cause: the agent's planner configuration is broken"):
            await client.start_session("0XxBRK000000000001")
        admin.faults({"route": "start_session", "error": "engine_config", "times": 1})
        with pytest.raises(ServerError, match=r"Cause: instanceConfig\.endpoint .* is not the org's My Domain URL"):
            await client.start_session("0XxSVC000000000001")
        with pytest.raises(BadRequest, match="Cause: the agent was given by something that is not an agent id"):
            await client.start_session("0XxSHORT")  # an id by its prefix, but not 15 or 18 characters


async def test_uncertain_failures_keep_the_general_advice(org: RunningEmulator, admin: Admin) -> None:
    async with AsyncAgentClient(**kwargs(org)) as client:
        with pytest.raises(NotFound) as caught:
            await client.start_session("0XxOFF000000000001")  # inactive, or wrong id: the API cannot tell
    assert "Cause:" not in str(caught.value)
    assert "check the agent id" in str(caught.value)
