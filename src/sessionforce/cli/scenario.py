"""The YAML format of ``sessionforce run``: suites of scripted conversations with expectations per reply.

::

    agent: 0XxRM0000000001          # optional: else --agent, SF_AGENT_ID, the profile, or the demo agent
    vars: {city: Lyon}              # optional: ${city} in say/answer/expect text; ${env:NAME} reads the environment
    variables:                      # optional: Agent API session variables, for every conversation
      - {name: $Context.EndUserLanguage, type: Text, value: en_US}
    conversations:
      - name: booking a repair
        turns:
          - say: "book a repair"
            expect: {type: Inquire}
          - answer: "2026-12-01"     # a Reply to the agent's last question (Inquire or Confirm)
            expect: {type: Confirm, contains: "2026-12-01"}
          - answer: "yes"
            expect: {action: BookRepair}

Every problem is reported with the file and the place in it, e.g.
``suite.yaml: conversations[1].turns[0]: 'say' must be a string``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = ["ConversationSpec", "Expect", "ScenarioError", "Suite", "Turn", "check", "load_suite"]


class ScenarioError(Exception):
    """A suite file that cannot be read or does not follow the format; the message names file and place."""


def _strings(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return None if value is None else [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise ValueError("must be a string or a list of strings")


class Expect(BaseModel):
    """What one reply must show. Every given check must hold."""

    model_config = ConfigDict(extra="forbid")

    contains: list[str] | None = None
    """Each string appears in the reply text (case-insensitive)."""
    not_contains: list[str] | None = None
    """No string appears in the reply text (case-insensitive)."""
    regex: str | None = None
    """The pattern is found in the reply text (``re.search``; ``(?i)`` for case-insensitive)."""
    type: list[str] | None = None
    """Each message type (Inform, Inquire, Confirm, Escalate, Failure, SessionEnded, ...) is present."""
    action: str | None = None
    """An action result with this name is present."""
    citation: bool | None = None
    """The reply cites a knowledge source (true), or cites none (false)."""
    escalation: bool | None = None
    """The agent escalated to a person (true), or did not (false)."""
    ended: bool | None = None
    """The agent ended the session (true), or did not (false)."""
    awaiting: Literal["message", "input", "confirmation", "escalated", "ended"] | None = None
    """What the agent waits for after the reply."""

    @field_validator("contains", "not_contains", "type", mode="before")
    @classmethod
    def _as_list(cls, value: Any) -> Any:
        return _strings(value)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"is not a valid regular expression ({exc})") from None
        return value


class Turn(BaseModel):
    """One user turn: ``say`` a message, or ``answer`` the agent's last question."""

    model_config = ConfigDict(extra="forbid")

    say: str | None = None
    answer: str | None = None
    expect: Expect = Field(default_factory=Expect)

    @field_validator("say", "answer", mode="before")
    @classmethod
    def _scalar_text(cls, value: Any) -> Any:
        # YAML reads `answer: yes` as true and `say: 42` as a number; the user meant the text.
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, int | float):
            return str(value)
        return value

    @model_validator(mode="after")
    def _one_of(self) -> Turn:
        if (self.say is None) == (self.answer is None):
            raise ValueError("a turn has exactly one of 'say' or 'answer'")
        return self

    @property
    def text(self) -> str:
        """What the user sends."""
        return self.say if self.say is not None else self.answer or ""

    def describe(self) -> str:
        """``say 'hello'`` or ``answer 'yes'``, for messages."""
        text = self.text if len(self.text) <= 40 else self.text[:39] + "…"
        return f"{'say' if self.say is not None else 'answer'} {text!r}"


class _Common(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: str | None = None
    vars: dict[str, str | int | float | bool] = Field(default_factory=dict)
    variables: list[dict[str, Any]] = Field(default_factory=list)
    """Agent API variables (``{name, type, value}``) every session of the conversation starts with."""


class ConversationSpec(_Common):
    """One scripted conversation: its own conversation (and session), ended at the end."""

    name: str
    turns: list[Turn] = Field(min_length=1)


class Suite(_Common):
    """One YAML file: conversations plus what they share."""

    conversations: list[ConversationSpec] = Field(min_length=1)


_MESSAGES = {
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "missing": "is required",
    "extra_forbidden": "is not a known key",
    "too_short": "must not be empty",
    "literal_error": "must be one of message, input, confirmation, escalated, ended",
}


def _place(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(error: Any) -> str:
    loc = tuple(error["loc"])
    message = _MESSAGES.get(error["type"]) or str(error["msg"]).removeprefix("Value error, ")
    if loc and isinstance(loc[-1], str):
        parent = _place(loc[:-1])
        return f"{parent + ': ' if parent else ''}'{loc[-1]}' {message}"
    return f"{_place(loc) or 'the file'}: {message}"


_VAR = re.compile(r"\$\{(env:)?([A-Za-z_][A-Za-z0-9_.-]*)\}")


def _substitute(value: Any, values: dict[str, str], where: str) -> Any:
    if isinstance(value, str):
        def one(match: re.Match[str]) -> str:
            env, name = match.group(1), match.group(2)
            found = os.environ.get(name) if env else values.get(name)
            if found is None:
                source = "environment variable" if env else "variable (define it under 'vars')"
                raise ScenarioError(f"{where}: unknown {source} {name!r}")
            return found

        return _VAR.sub(one, value)
    if isinstance(value, list):
        return [_substitute(v, values, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _substitute(v, values, f"{where}.{k}") for k, v in value.items()}
    return value


def load_suite(path: Path) -> Suite:
    """Read and validate one suite file, with ``${...}`` substituted; raises :class:`ScenarioError`."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: not UTF-8 text (byte {exc.start}); save the suite as UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(f"{path}: {where}not valid YAML ({problem})") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: a suite is a mapping with a 'conversations' list")
    try:
        suite = Suite.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise ScenarioError(f"{path}: {_describe(first)}") from None
    conversations = []
    for i, conversation in enumerate(suite.conversations):
        merged = {**suite.vars, **conversation.vars}
        values = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in merged.items()}
        raw = conversation.model_dump(exclude={"vars"}, exclude_none=True)
        raw = _substitute(raw, values, f"{path}: conversations[{i}]")
        conversations.append(ConversationSpec.model_validate({**raw, "vars": conversation.vars}))
    return suite.model_copy(update={"conversations": conversations})


def check(expect: Expect, reply: Any) -> list[str]:
    """Every expectation ``reply`` (a :class:`~sessionforce.agent_api.Reply`) breaks, described; empty if none."""
    text = reply.text
    shown = repr(text if len(text) <= 80 else text[:79] + "…")
    types = [m.type for m in reply.messages]
    problems: list[str] = []
    for needle in expect.contains or ():
        if needle.lower() not in text.lower():
            problems.append(f"contains {needle!r}: the reply was {shown}")
    for needle in expect.not_contains or ():
        if needle.lower() in text.lower():
            problems.append(f"not_contains {needle!r}: the reply was {shown}")
    if expect.regex is not None and not re.search(expect.regex, text):
        problems.append(f"regex {expect.regex!r}: no match in {shown}")
    for kind in expect.type or ():
        if kind not in types:
            problems.append(f"type {kind}: the reply had {', '.join(types) or 'no messages'}")
    if expect.action is not None:
        names = [str(item.get("name")) for item in reply.actions if isinstance(item, dict) and item.get("name")]
        if expect.action not in names:
            problems.append(f"action {expect.action}: the reply had {', '.join(names) or 'no action results'}")
    for name, wanted, actual in (("citation", expect.citation, bool(reply.citations)),
                                 ("escalation", expect.escalation, reply.escalated),
                                 ("ended", expect.ended, reply.ended)):
        if wanted is not None and wanted != actual:
            problems.append(f"{name}: {str(wanted).lower()}: the reply had {'one' if actual else 'none'}")
    if expect.awaiting is not None and reply.awaiting.value != expect.awaiting:
        problems.append(f"awaiting {expect.awaiting}: the agent awaits {reply.awaiting.value}")
    return problems
