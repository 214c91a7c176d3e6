"""What an emulated agent is, the Python-callable kind, and loading agents from YAML or Python objects.

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
from pathlib import Path
from typing import Any

import yaml

PartialMessage = Mapping[str, Any]
#: What a Python agent may return: a text (one ``Inform``), one message, or a list of either.
AgentOutput = str | PartialMessage | Sequence[str | PartialMessage]

_AGENT_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,80}$")


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
    """Base of every emulated agent: identity, greeting, latency, and :meth:`respond`."""

    kind = "base"

    def __init__(self, *, agent_id: str, name: str, greeting: str, latency_ms: float = 0.0,
                 description: str = "") -> None:
        if not _AGENT_ID.match(agent_id):
            raise AgentConfigError(f"agent id {agent_id!r} must be 1-80 letters, digits, '_', '.' or '-'")
        self.id = agent_id
        self.name = name
        self.greeting = greeting
        self.latency_ms = latency_ms
        self.description = description

    def respond(self, ctx: TurnContext) -> list[PartialMessage]:
        """The reply messages for one accepted turn (partial; the emulator completes them)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """The agent as ``GET /__emulator/agents`` lists it."""
        return {"id": self.id, "name": self.name, "description": self.description, "kind": self.kind,
                "latencyMs": self.latency_ms, "greeting": self.greeting}


def agent_id_for(name: str) -> str:
    """A stable 18-character Salesforce-style agent id (``0Xx...``) derived from ``name``."""
    return "0Xx" + hashlib.sha1(name.encode()).hexdigest()[:15]


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
                 description: str = "") -> None:
        name = name or str(getattr(handler, "__name__", "callable agent"))
        super().__init__(
            agent_id=agent_id or agent_id_for(name),
            name=name,
            greeting=greeting or f"Hi, I'm {name}. How can I help you?",
            latency_ms=latency_ms,
            description=description,
        )
        self.handler = handler

    def respond(self, ctx: TurnContext) -> list[PartialMessage]:
        """Call the handler and normalize what it returned."""
        return normalize_output(self.handler(ctx))


AgentSource = str | Path | Sequence[Mapping[str, Any] | EmulatedAgent | Callable[[TurnContext], Any]]


def load_agents(source: AgentSource | None) -> list[EmulatedAgent]:
    """Agents from a YAML path, or from a list of definitions / agents / callables; None = the demo."""
    # Imported here: scripted.py and demo.py import this module for the types above.
    from sessionforce.emulator.agent_schema import parse_agent
    from sessionforce.emulator.demo import demo_agent

    if source is None:
        return [demo_agent()]
    if isinstance(source, str | Path):
        return _check_unique(_load_yaml_agents(Path(source)), str(source))
    agents: list[EmulatedAgent] = []
    for index, item in enumerate(source):
        where = f"agents[{index}]"
        if isinstance(item, EmulatedAgent):
            agents.append(item)
        elif isinstance(item, Mapping):
            agents.append(parse_agent(item, where))
        elif callable(item):
            agents.append(CallableAgent(item))
        else:
            raise AgentConfigError(f"{where}: expected an agent mapping, EmulatedAgent or callable, "
                                   f"got {type(item).__name__}")
    return _check_unique(agents, "agents")


def _load_yaml_agents(path: Path) -> list[EmulatedAgent]:
    from sessionforce.emulator.agent_schema import parse_agent

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AgentConfigError(f"{path}: cannot read the agents file ({exc.strerror or exc})") from exc
    except yaml.YAMLError as exc:
        # One line: PyYAML's message spans several, and the CLI promises one line per problem.
        raise AgentConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from exc
    if not isinstance(document, Mapping) or not isinstance(document.get("agents"), list):
        raise AgentConfigError(f"{path}: expected a mapping with an 'agents:' list at the top level")
    if not document["agents"]:
        raise AgentConfigError(f"{path}: 'agents' is empty; define at least one agent")
    unknown = set(document) - {"agents"}
    if unknown:
        raise AgentConfigError(f"{path}: unknown top-level key(s) {sorted(unknown)}; only 'agents' is allowed")
    return [parse_agent(item, f"{path}: agents[{i}]") for i, item in enumerate(document["agents"])]


def _check_unique(agents: list[EmulatedAgent], where: str) -> list[EmulatedAgent]:
    seen: set[str] = set()
    for agent in agents:
        if agent.id in seen:
            raise AgentConfigError(f"{where}: two agents share the id {agent.id!r}; give each a unique 'id'")
        seen.add(agent.id)
    if not agents:
        raise AgentConfigError(f"{where}: no agents defined")
    return agents
