"""Scripted agents from YAML and Python-callable agents, plus the errors bad definitions give."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from emulator_wire import Wire, assert_api_error

from sessionforce.emulator import AgentConfigError, CallableAgent, TurnContext, run_emulator

AGENTS_YAML = """
agents:
  - id: 0XxTEST00000000001
    name: Pizza Bot
    greeting: "Ciao! Pizza time?"
    latency_ms: 150
    fallback: "Sorry, I only do pizza. You said: {text}"
    topics:
      - name: order
        keywords: [pizza, order]
        steps:
          - inquire: {message: "Which size?", collect: {name: size, type: Text}}
          - confirm: {message: "One {size} pizza?", confirm: {actionName: OrderPizza}}
          - action: {name: OrderPizza, result: {size: "{size}", eta: 30}, message: "Ordered a {size} pizza."}
      - name: remember
        regex: "i live in (?P<city>\\\\w+)"
        steps:
          - remember: {city: "{city}"}
          - inform: "Noted: {city}."
      - name: where
        keywords: ["where do i live"]
        steps:
          - inform: {message: "You live in {city}.", otherwise: "You haven't told me."}
      - name: menu
        keywords: [menu]
        steps:
          - inform:
              message: "Margherita and Marinara."
              citations: [{type: record, value: "ka0XX000000menu", inlineMetadata: []}]
      - name: broken
        keywords: [oven]
        steps:
          - fail: {action: HeatOven, code: ESCALATE, errors: ["oven offline"]}
      - name: manager
        keywords: [manager]
        reply: "Fetching the manager."
      - name: bye
        keywords: [ciao]
        steps:
          - end: InfiniteLoopDetected
  - name: Second Bot
"""


@pytest.fixture
def pizza(tmp_path: Path) -> Any:
    path = tmp_path / "agents.yaml"
    path.write_text(AGENTS_YAML)
    with run_emulator(agents=path) as emu:
        wire = Wire(emu)
        yield emu, wire
        wire.close()


def test_yaml_agents_are_served(pizza: Any) -> None:
    emu, wire = pizza
    assert emu.agent_ids[0] == "0XxTEST00000000001"
    assert emu.default_agent_id == "0XxTEST00000000001"
    assert emu.agent_ids[1].startswith("0Xx")
    assert len(emu.agent_ids[1]) == 18
    assert [a["name"] for a in wire.admin("GET", "/agents")["agents"]] == ["Pizza Bot", "Second Bot"]
    assert wire.start().json()["messages"][0]["message"] == "Ciao! Pizza time?"
    assert wire.start(emu.agent_ids[1]).json()["messages"][0]["message"] == "Hi, I'm Second Bot. How can I help you?"


def test_yaml_flow_latency_memory_citations_failure_end(pizza: Any) -> None:
    _emu, wire = pizza
    sid = wire.session()
    started = time.perf_counter()
    assert wire.send(sid, 1, "a pizza please").json()["messages"][0]["type"] == "Inquire"
    assert time.perf_counter() - started >= 0.14  # per-agent latency
    assert wire.send(sid, 2, "large").json()["messages"][0]["message"] == "One large pizza?"
    [done] = wire.send(sid, 3, "yes", kind="Reply").json()["messages"]
    assert done["result"] == [{"type": "ActionResult", "name": "OrderPizza", "value": {"size": "large", "eta": 30}}]
    assert wire.send(sid, 4, "where do i live").json()["messages"][0]["message"] == "You haven't told me."
    assert wire.send(sid, 5, "I live in Naples").json()["messages"][0]["message"] == "Noted: Naples."
    assert wire.send(sid, 6, "where do i live").json()["messages"][0]["message"] == "You live in Naples."
    [menu] = wire.send(sid, 7, "menu?").json()["messages"]
    assert menu["citedReferences"][0]["type"] == "record"
    [failure] = wire.send(sid, 8, "is the oven on").json()["messages"]
    assert (failure["type"], failure["code"], failure["errors"]) == ("Failure", "ESCALATE", ["oven offline"])
    assert wire.send(sid, 9, "manager!").json()["messages"][0]["message"] == "Fetching the manager."
    assert wire.send(sid, 10, "huh").json()["messages"][0]["message"] == "Sorry, I only do pizza. You said: huh"
    [ended] = wire.send(sid, 11, "ciao").json()["messages"]
    assert (ended["type"], ended["reason"]) == ("SessionEnded", "InfiniteLoopDetected")
    assert_api_error(wire.send(sid, 12), 404)


@pytest.mark.parametrize(("text", "fragment"), [
    ("agents: []", "'agents' is empty"),
    ("nothing: here", "'agents:' list"),
    ("agents: [{name: A}]\nextra: 1", "unknown top-level key"),
    ("agents: [{greeting: hi}]", "agents[0].name"),
    ("agents: [{name: A, colour: red}]", "agents[0]: unknown key(s) ['colour']"),
    ("agents: [{name: A, latency_ms: -1}]", "agents[0].latency_ms"),
    ("agents: [{name: A, topics: [{reply: hi}]}]", "agents[0].topics[0]: give 'keywords' or 'regex'"),
    ("agents: [{name: A, topics: [{keywords: [x]}]}]", "exactly one of 'reply'"),
    ("agents: [{name: A, topics: [{regex: '(', reply: x}]}]", "agents[0].topics[0].regex"),
    ("agents: [{name: A, topics: [{keywords: [x], steps: [{infrom: hi}]}]}]", "topics[0].steps[0]"),
    ("agents: [{name: A, topics: [{keywords: [x], steps: [{inform: 'hi {user.name}'}]}]}]", "plain name"),
    ("agents: [{name: A, topics: [{keywords: [x], steps: [{action: {result: {}}}]}]}]", "steps[0].action.name"),
    ("agents: [{name: A, topics: [{keywords: [x], steps: [{inquire: {message: m, colect: d}}]}]}]", "colect"),
    ("agents: [{name: A, topics: [{keywords: [x], steps: [{escalate: [Queue]}]}]}]", "targets"),
    ("agents: [{name: A}, {name: A}]", "share the id"),
    ("agents: [{name: A, id: 'bad id!'}]", "agents[0].id"),
    ("agents: [unclosed", "not valid YAML"),
])
def test_bad_agent_files_name_the_file_and_the_field(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "agents.yaml"
    path.write_text(text)
    with pytest.raises(AgentConfigError) as caught, run_emulator(agents=path):
        pass
    assert str(path) in str(caught.value)
    assert fragment in str(caught.value)


def test_missing_agent_file() -> None:
    with pytest.raises(AgentConfigError, match="cannot read"), run_emulator(agents="/nonexistent/agents.yaml"):
        pass


def test_callable_agents() -> None:
    seen: list[TurnContext] = []

    def shout(ctx: TurnContext) -> Any:
        seen.append(ctx)
        ctx.memory["count"] = ctx.memory.get("count", 0) + 1
        if ctx.text == "done":
            return [{"type": "Inform", "message": "bye"}, {"type": "SessionEnded", "reason": "Action"}]
        if ctx.text == "boom":
            raise RuntimeError("kaput")
        return f"{ctx.text.upper()} #{ctx.memory['count']}"

    custom = CallableAgent(lambda ctx: {"type": "Escalate", "targets": [{"type": "Queue", "value": "Q"}]},
                           name="Escalator", agent_id="0XxESCALATOR0000AA", greeting="Hello there")
    with run_emulator(agents=[shout, custom, {"name": "Scripted", "topics": []}]) as emu:
        wire = Wire(emu)
        sid = wire.session()
        [reply] = wire.send(sid, 1, "hi").json()["messages"]
        assert reply["message"] == "HI #1"
        assert reply["feedbackId"]
        assert set(reply) >= {"planId", "isContentSafe", "result", "citedReferences"}
        assert wire.send(sid, 2, "again").json()["messages"][0]["message"] == "AGAIN #2"
        assert (seen[1].sequence_id, seen[1].turn, seen[1].message_type) == (2, 2, "Text")
        assert_api_error(wire.send(sid, 3, "boom"), 500, "kaput")
        assert wire.send(sid, 4, "still unlocked").status_code == 200
        assert wire.send(sid, 5, "done").json()["messages"][1]["type"] == "SessionEnded"
        assert_api_error(wire.send(sid, 6), 404)
        other = wire.session("0XxESCALATOR0000AA")
        assert wire.start("0XxESCALATOR0000AA").json()["messages"][0]["message"] == "Hello there"
        [escalate] = wire.send(other, 1, "x").json()["messages"]
        assert escalate["type"] == "Escalate"
        assert escalate["feedbackId"]
        assert len(emu.agent_ids) == 3
        wire.close()


def test_the_examples_in_the_docs_load(tmp_path: Path) -> None:
    docs = Path(__file__).parents[2] / "docs" / "emulator.md"
    blocks = docs.read_text().split("```yaml\n")[1:]
    agents_yaml, faults_yaml = (block.split("```", 1)[0] for block in blocks[:2])
    (tmp_path / "agents.yaml").write_text(agents_yaml)
    (tmp_path / "faults.yaml").write_text(faults_yaml)
    with run_emulator(agents=tmp_path / "agents.yaml", faults=tmp_path / "faults.yaml") as emu:
        assert emu.default_agent_id == "0XxPIZZA0000000001"
        assert len(emu.counters()["requests"]) == 0
