"""What an emulated agent is, and the Python-callable kind (loading them is ``_loading.py``).

An agent sees one accepted user turn (:class:`TurnContext`) and returns partial reply messages; the
emulator completes them (``messages.complete_message``) and applies their effects (a ``SessionEnded``
ends the session). Per-session memory lives in ``TurnContext.memory``: it survives the turns of one
session and starts empty in a new one, which is what makes a resumed conversation observable.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PartialMessage = Mapping[str, Any]
#: What a Python agent may return: a text (one ``Inform``), one message, or a list of either.
AgentOutput = str | PartialMessage | Sequence[str | PartialMessage]

_AGENT_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,80}$")
# Salesforce's rule for a DeveloperName: a letter first, then letters, digits and single underscores.
_API_NAME = re.compile(r"^[A-Za-z](?:[A-Za-z0-9]|_(?!_))*$")
#: Agent types: a service agent runs as its own agent user; an employee agent as the caller's user.
AGENT_TYPES = ("service", "employee")


class AgentConfigError(ValueError):
    """An agent definition (YAML file or Python object) is invalid; the message names where and why."""


@dataclass(slots=True)
class TurnContext:
    """One accepted user turn, as an agent sees it."""

    session_id: str
    agent_id: str
    sequence_id: int
    message_type: str
    text: str
    in_reply_to: str | None
    message: dict[str, Any]
    #: Facts this agent keeps for this session only (e.g. the user's name).
    memory: dict[str, Any]
    #: Session variables by name (from start-session, updated by each send).
    variables: dict[str, Any]
    #: 1 for the first accepted turn of the session.
    turn: int


class EmulatedAgent:
    """Base of every emulated agent: identity, greeting, latency, its org record, and :meth:`respond`.

    The org record is what the org's REST API shows of it (``BotDefinition``): ``api_name`` (its
    DeveloperName; default derived from ``name``), ``agent_type`` (``service``: runs as its agent user;
    ``employee``: runs as the caller's user, so starting it with ``bypassUser: true`` fails with 400
    "Invalid user ID"), ``active`` (an inactive agent cannot start sessions: 404) and ``invalid_config``
    (a broken planner configuration: every start answers 412 "Invalid Config").
    """

    kind = "base"

    def __init__(self, *, agent_id: str, name: str, greeting: str, latency_ms: float = 0.0,
                 description: str = "", api_name: str | None = None, agent_type: str = "service",
                 active: bool = True, invalid_config: bool = False) -> None:
        api_name = api_name if api_name is not None else api_name_for(name)
        problem = agent_id_problem(agent_id) or api_name_problem(api_name)
        if problem:
            raise AgentConfigError(problem)
        if agent_type not in AGENT_TYPES:
            raise AgentConfigError(f"type {agent_type!r} must be one of {list(AGENT_TYPES)}")
        self.id = agent_id
        self.name = name
        self.greeting = greeting
        self.latency_ms = latency_ms
        self.description = description
        self.api_name = api_name
        self.agent_type = agent_type
        self.active = active
        self.invalid_config = invalid_config

    def respond(self, ctx: TurnContext) -> list[PartialMessage]:
        """The reply messages for one accepted turn (partial; the emulator completes them)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """The agent as ``GET /__emulator/agents`` lists it."""
        return {"id": self.id, "name": self.name, "apiName": self.api_name, "type": self.agent_type,
                "active": self.active, "invalidConfig": self.invalid_config, "description": self.description,
                "kind": self.kind, "latencyMs": self.latency_ms, "greeting": self.greeting}


def agent_id_for(name: str) -> str:
    """A stable 18-character Salesforce-style agent id (``0Xx...``) derived from ``name``."""
    return "0Xx" + hashlib.sha1(name.encode()).hexdigest()[:15]


def agent_id_problem(agent_id: str) -> str | None:
    """What is wrong with ``agent_id`` as an agent id, or None."""
    if not _AGENT_ID.match(agent_id):
        return f"agent id {agent_id!r} must be 1-80 letters, digits, '_', '.' or '-'"
    return None


def api_name_problem(api_name: str) -> str | None:
    """What is wrong with ``api_name`` as a DeveloperName (Salesforce's rule), or None."""
    if not _API_NAME.match(api_name) or api_name.endswith("_") or len(api_name) > 80:
        return (f"api_name {api_name!r} must be 1-80 letters, digits and single underscores, start with a letter "
                "and not end with '_' (Salesforce's DeveloperName rule)")
    return None


def api_name_for(name: str) -> str:
    """A DeveloperName derived from a label: "Cog & Chain Bikes Assistant" -> "Cog_Chain_Bikes_Assistant"."""
    words = re.findall(r"[A-Za-z0-9]+", name)
    api_name = "_".join(words) or "Agent"
    return api_name if api_name[0].isalpha() else f"Agent_{api_name}"


def normalize_output(output: AgentOutput | None) -> list[PartialMessage]:
    """Turn what a Python agent returned into a list of partial messages (a str is one ``Inform``)."""
    if output is None:
        return []
    if isinstance(output, str):
        return [{"type": "Inform", "message": output}]
    if isinstance(output, Mapping):
        return [output]
    result: list[PartialMessage] = []
    for item in output:
        if isinstance(item, str):
            result.append({"type": "Inform", "message": item})
        elif isinstance(item, Mapping):
            result.append(item)
        else:
            raise TypeError(f"agent returned {type(item).__name__}; expected str or a message mapping")
    return result


class CallableAgent(EmulatedAgent):
    """An agent backed by a Python function ``handler(ctx: TurnContext) -> str | message | list``.

    For users' own tests: ``run_emulator(agents=[CallableAgent(my_handler, name="Echo")])``. A bare
    function in ``agents`` is wrapped in one, named after the function.
    """

    kind = "callable"

    def __init__(self, handler: Callable[[TurnContext], AgentOutput | None], *, name: str | None = None,
                 agent_id: str | None = None, greeting: str | None = None, latency_ms: float = 0.0,
                 description: str = "", api_name: str | None = None, agent_type: str = "service",
                 active: bool = True, invalid_config: bool = False) -> None:
        name = name or str(getattr(handler, "__name__", "callable agent"))
        super().__init__(
            agent_id=agent_id or agent_id_for(name),
            name=name,
            greeting=greeting or f"Hi, I'm {name}. How can I help you?",
            latency_ms=latency_ms,
            description=description,
            api_name=api_name,
            agent_type=agent_type,
            active=active,
            invalid_config=invalid_config,
        )
        self.handler = handler

    def respond(self, ctx: TurnContext) -> list[PartialMessage]:
        """Call the handler and normalize what it returned."""
        return normalize_output(self.handler(ctx))
