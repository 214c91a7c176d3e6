"""Scripted agents: topics matched by keywords or regex, each a list of steps (see docs/emulator.md).

A topic's steps run in order until one waits for the user (``inquire``, ``confirm``) or the agent ends
the session (``end``). The wait is kept in the session's memory, so the next turn answers it. Templates
use ``{name}`` placeholders filled from regex groups, collected slots, remembered facts and ``{text}``.
Everything is checked when the file loads, so a typo fails at start-up with its location, not mid-test.

A ``Text`` turn that starts with :data:`REPLAY_HEADER` is a resume preamble (a client carrying earlier
turns into a new session): it is taken as context, not as questions. Only the facts its ``User:`` lines
would have remembered are kept, nothing is left waiting, and the answer is one short ``Inform``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sessionforce.emulator._agents import EmulatedAgent, PartialMessage, TurnContext

_YES = re.compile(r"^\s*(yes|y|yeah|yep|sure|ok|okay|confirm|confirmed|please do|do it|go ahead)\b", re.I)
_PENDING = "_pending"  # memory key holding the step a topic waits on
_PER_TURN = ("text", "sequenceId", "sessionId", "agentName")  # template variables fresh on every turn

#: First line of a resume preamble, as sessionforce's ``resume="replay"`` sends it (docs/lifecycle.md).
#: Spelled out here, not imported: the emulator stands alone (a test checks the two agree).
REPLAY_HEADER = "Context from earlier in this conversation:"
#: The default answer to a resume preamble (``context_message`` in an agents file).
CONTEXT_MESSAGE = "Thanks, I've caught up on our earlier conversation."


class _Vars(dict[str, Any]):
    """Template variables that render a missing name as "" and remember that one was missing."""

    missing = False

    def __missing__(self, key: str) -> str:
        self.missing = True
        return ""


def _render(value: Any, variables: _Vars) -> Any:
    """Fill placeholders in strings, recursively through mappings and lists."""
    if isinstance(value, str):
        return value.format_map(variables)
    if isinstance(value, Mapping):
        return {key: _render(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [_render(item, variables) for item in value]
    return value


@dataclass(frozen=True, slots=True)
class Step:
    """One parsed step: its kind and its options (a mapping; shorthand values already expanded)."""

    kind: str
    options: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Topic:
    """A topic: when it matches (keywords, regex) and what it does (steps)."""

    name: str
    keywords: re.Pattern[str] | None
    regex: re.Pattern[str] | None
    steps: tuple[Step, ...]

    def match(self, text: str) -> dict[str, str] | None:
        """The regex's named groups if the topic matches ``text``, else None."""
        if self.regex is not None:
            found = self.regex.search(text)
            if found:
                return {k: v for k, v in found.groupdict().items() if v is not None}
        if self.keywords is not None and self.keywords.search(text):
            return {}
        return None


@dataclass
class _Turn:
    """Working state while a topic's steps run for one turn."""

    variables: _Vars
    out: list[PartialMessage] = field(default_factory=list)


class ScriptedAgent(EmulatedAgent):
    """An agent defined by a YAML mapping (see the module docstring and docs/emulator.md)."""

    kind = "scripted"

    def __init__(self, *, agent_id: str, name: str, greeting: str, latency_ms: float, description: str,
                 fallback: str, cancel_message: str, topics: tuple[Topic, ...], api_name: str | None = None,
                 agent_type: str = "service", active: bool = True, invalid_config: bool = False,
                 context_message: str = CONTEXT_MESSAGE) -> None:
        super().__init__(agent_id=agent_id, name=name, greeting=greeting, latency_ms=latency_ms,
                         description=description, api_name=api_name, agent_type=agent_type, active=active,
                         invalid_config=invalid_config)
        self.fallback = fallback
        self.cancel_message = cancel_message
        self.context_message = context_message
        self.topics = topics

    def describe(self) -> dict[str, Any]:
        """The agent as the admin surface lists it, with its topic names."""
        return {**super().describe(), "topics": [t.name for t in self.topics]}

    def respond(self, ctx: TurnContext) -> list[PartialMessage]:
        """Answer a pending inquire/confirm, or match a topic, or fall back to echoing the text."""
        memory = ctx.memory
        variables = self._variables(ctx, ctx.text)
        pending = memory.pop(_PENDING, None)
        if ctx.message_type == "Cancel":
            message = self.cancel_message if pending else "There is nothing to cancel right now."
            return [{"type": "Inform", "message": message}]
        if ctx.message_type == "TransferFailed":
            return [{"type": "Inform", "message": "I couldn't connect you with a person right now. "
                     "Is there anything else I can help with?"}]
        if ctx.message_type == "TransferSucceeded":
            return [{"type": "Inform", "message": "You're now connected with a person."}]
        if ctx.message_type == "Text" and ctx.text.split("\n", 1)[0].rstrip() == REPLAY_HEADER:
            return self._take_context(ctx, memory)  # any pending step was dropped above: nothing waits
        if pending is not None:
            variables.update(pending["vars"])
            if pending["wait"] == "inquire":
                variables[pending["slot"]] = ctx.text.strip()
            elif not _YES.match(ctx.text):
                decline = pending.get("decline") or "Okay, I won't do that."
                return [{"type": "Inform", "message": _render(decline, variables)}]
            return self._run(pending["topic"], pending["step"], _Turn(variables), memory)
        for index, topic in enumerate(self.topics):
            groups = topic.match(ctx.text)
            if groups is not None:
                variables.update(groups)
                return self._run(index, 0, _Turn(variables), memory)
        return [{"type": "Inform", "message": _render(self.fallback, variables)}]

    def _variables(self, ctx: TurnContext, text: str) -> _Vars:
        """Remembered facts plus this turn's own variables (``text`` is what the user said)."""
        variables = _Vars({k: v for k, v in ctx.memory.items() if k != _PENDING})
        variables.update(text=text, sequenceId=ctx.sequence_id, sessionId=ctx.session_id, agentName=self.name)
        return variables

    def _take_context(self, ctx: TurnContext, memory: dict[str, Any]) -> list[PartialMessage]:
        """A resume preamble: keep what each replayed user line would have remembered, ask nothing."""
        for said in _replayed_user_lines(ctx.text):
            for topic in self.topics:
                groups = topic.match(said)
                if groups is not None:
                    variables = self._variables(ctx, said)
                    variables.update(groups)
                    for step in topic.steps:
                        if step.kind == "remember":
                            _remember_known(step.options, variables, memory)
                    break
        return [{"type": "Inform", "message": self.context_message}]

    def _run(self, topic_index: int, start: int, turn: _Turn, memory: dict[str, Any]) -> list[PartialMessage]:
        steps = self.topics[topic_index].steps
        for index in range(start, len(steps)):
            step = steps[index]
            waits = STEP_RUNNERS[step.kind](step.options, turn, memory)
            if waits is not None:
                saved = {k: v for k, v in turn.variables.items() if k not in memory and k not in _PER_TURN}
                memory[_PENDING] = {"topic": topic_index, "step": index + 1, "vars": saved, **waits}
                break
            if step.kind == "end":
                break
        return turn.out


def _replayed_user_lines(preamble: str) -> list[str]:
    """The ``User:`` entries of a preamble; a line without a ``User:``/``Agent:`` prefix continues the last."""
    said: list[list[str]] = []
    current: list[str] | None = None
    for line in preamble.split("\n")[1:]:
        if line.startswith("User: "):
            current = [line.removeprefix("User: ")]
            said.append(current)
        elif line.startswith("Agent: "):
            current = None
        elif current is not None:
            current.append(line)
    return ["\n".join(lines) for lines in said]


def _remember_known(options: Mapping[str, Any], variables: _Vars, memory: dict[str, Any]) -> None:
    """Remember each fact whose placeholders are all known (a replayed line lacks the answers that
    followed it, and an empty value must not overwrite a fact already carried)."""
    for key, value in options.items():
        variables.missing = False
        fact = _render(value, variables)
        if not variables.missing:
            memory[key] = fact
            variables[key] = fact


def _text(options: Mapping[str, Any], turn: _Turn, key: str = "message") -> str:
    """Render ``options[key]``; if a placeholder was unknown and ``otherwise`` is given, use that."""
    turn.variables.missing = False
    text = str(_render(options.get(key, ""), turn.variables))
    if turn.variables.missing and "otherwise" in options:
        text = str(_render(options["otherwise"], turn.variables))
    return text


def _inform(o: Mapping[str, Any], t: _Turn, m: dict[str, Any]) -> dict[str, Any] | None:
    message: dict[str, Any] = {"type": "Inform", "message": _text(o, t)}
    if "citations" in o:
        message["citedReferences"] = _render(o["citations"], t.variables)
    if "result" in o:
        message["result"] = _render(o["result"], t.variables)
    t.out.append(message)
    return None


def _remember(o: Mapping[str, Any], t: _Turn, m: dict[str, Any]) -> dict[str, Any] | None:
    facts = _render(dict(o), t.variables)
    m.update(facts)
    t.variables.update(facts)
    return None


def _inquire(o: Mapping[str, Any], t: _Turn, m: dict[str, Any]) -> dict[str, Any] | None:
    slot = o["collect"]["name"]
    if slot in t.variables and not o.get("ask_always", False):
        return None  # already known (e.g. from the regex): do not ask again
    t.out.append({"type": "Inquire", "message": _text(o, t), "collect": _render(o["collect"], t.variables)})
    return {"wait": "inquire", "slot": slot}


def _confirm(o: Mapping[str, Any], t: _Turn, m: dict[str, Any]) -> dict[str, Any] | None:
    t.out.append({"type": "Confirm", "message": _text(o, t), "confirm": _render(o.get("confirm", {}), t.variables)})
    return {"wait": "confirm", "decline": o.get("decline")}


def _action(o: Mapping[str, Any], t: _Turn, m: dict[str, Any]) -> dict[str, Any] | None:
    value = _render(o.get("result", {}), t.variables)
    # The shape of a `result` item is not in the public reference (our guess, see docs/emulator.md).
    result = [{"type": "ActionResult", "name": o["name"], "value": value}]
    t.out.append({"type": "Inform", "message": _text(o, t), "result": result})
    return None


def _lead_in(o: Mapping[str, Any], t: _Turn) -> None:
    if o.get("message"):
        t.out.append({"type": "Inform", "message": _text(o, t)})


def _fail(o: Mapping[str, Any], t: _Turn, m: dict[str, Any]) -> dict[str, Any] | None:
    _lead_in(o, t)
    errors = _render(o.get("errors", [f"The action {o.get('action', 'action')} failed."]), t.variables)
    t.out.append({"type": "Failure", "code": o.get("code", "ACTION_FAILED"), "errors": errors})
    return None


def _escalate(o: Mapping[str, Any], t: _Turn, m: dict[str, Any]) -> dict[str, Any] | None:
    _lead_in(o, t)
    t.out.append({"type": "Escalate", "targets": _render(o.get("targets", []), t.variables)})
    return None


def _end(o: Mapping[str, Any], t: _Turn, m: dict[str, Any]) -> dict[str, Any] | None:
    _lead_in(o, t)
    t.out.append({"type": "SessionEnded", "reason": o.get("reason", "Action")})
    return None


#: Step kind -> runner; a runner returns what the step waits for (or None to go on).
STEP_RUNNERS = {"inform": _inform, "remember": _remember, "inquire": _inquire, "confirm": _confirm,
                 "action": _action, "fail": _fail, "escalate": _escalate, "end": _end}
