"""Loading agents: from a YAML agents file, or from a list of definitions, agent objects and callables.

The top of the agent modules: it imports the schema (YAML definitions) and the demo agent, which import
the agent types below them; nothing imports this module but the server.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from sessionforce.emulator._agent_schema import parse_agent
from sessionforce.emulator._agents import AgentConfigError, CallableAgent, EmulatedAgent, TurnContext
from sessionforce.emulator._demo import demo_agent

AgentSource = str | Path | Sequence[Mapping[str, Any] | EmulatedAgent | Callable[[TurnContext], Any]]


def load_agents(source: AgentSource | None) -> list[EmulatedAgent]:
    """Agents from a YAML path, or from a list of definitions / agents / callables; None = the demo."""
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
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AgentConfigError(f"{path}: cannot read the agents file ({exc.strerror or exc})") from exc
    except RecursionError:
        raise AgentConfigError(f"{path}: nested too deeply to be an agents file") from None
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
