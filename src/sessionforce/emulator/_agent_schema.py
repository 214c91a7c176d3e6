"""Parse and check one scripted-agent definition (a mapping from YAML or Python).

Every error names where it is (``agents.yaml: agents[0].topics[2].steps[1].inquire``), what is wrong
and what to write instead, because the person reading it is setting up a test, not debugging us.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Any

from sessionforce.emulator._agents import (
    AGENT_TYPES,
    AgentConfigError,
    agent_id_for,
    agent_id_problem,
    api_name_problem,
)
from sessionforce.emulator._scripted import CONTEXT_MESSAGE, STEP_RUNNERS, ScriptedAgent, Step, Topic

_STEP_KINDS = tuple(STEP_RUNNERS)
_AGENT_KEYS = {"id", "name", "description", "greeting", "latency_ms", "fallback", "cancel_message",
               "context_message", "topics", "api_name", "type", "active", "invalid_config"}
_TOPIC_KEYS = {"name", "keywords", "regex", "reply", "steps"}
# Per step kind: the option keys it accepts when given as a mapping.
_STEP_OPTIONS: dict[str, set[str]] = {
    "inform": {"message", "otherwise", "citations", "result"},
    "remember": set(),
    "inquire": {"message", "collect", "ask_always"},
    "confirm": {"message", "confirm", "decline"},
    "action": {"name", "result", "message", "otherwise"},
    "fail": {"action", "code", "errors", "message"},
    "escalate": {"targets", "message"},
    "end": {"reason", "message"},
}


def _fail(where: str, problem: str) -> AgentConfigError:
    return AgentConfigError(f"{where}: {problem}")


def _mapping(value: Any, where: str, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(where, f"expected a mapping, got {type(value).__name__}")
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        raise _fail(where, f"unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(where, f"expected a non-empty string, got {value!r}")
    return value


def _check_template(value: Any, where: str) -> None:
    """Reject placeholders other than plain ``{name}`` (no attribute access, no positional fields)."""
    if isinstance(value, str):
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(value) if f is not None]
        except ValueError as exc:
            raise AgentConfigError(f"{where}: bad template {value!r} ({exc}); write {{{{ and }}}} for "
                                   "literal braces") from exc
        for name in fields:
            if not name.isidentifier():
                raise AgentConfigError(f"{where}: placeholder {{{name}}} must be a plain name like {{date}}")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check_template(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_template(item, f"{where}[{index}]")


def parse_agent(raw: Any, where: str) -> ScriptedAgent:
    """Build a :class:`ScriptedAgent` from one definition mapping, or raise :class:`AgentConfigError`."""
    data = _mapping(raw, where, _AGENT_KEYS)
    name = _string(data.get("name"), f"{where}.name")
    agent_id = _string(data["id"], f"{where}.id") if "id" in data else agent_id_for(name)
    if agent_id_problem(agent_id):
        raise _fail(f"{where}.id", str(agent_id_problem(agent_id)))
    latency = data.get("latency_ms", 0)
    if isinstance(latency, bool) or not isinstance(latency, int | float) or latency < 0:
        raise _fail(f"{where}.latency_ms", f"expected a number of milliseconds >= 0, got {latency!r}")
    texts = {key: _string(data[key], f"{where}.{key}") for key in ("greeting", "description", "fallback",
                                                                  "cancel_message", "context_message")
             if key in data}
    for key in ("fallback", "cancel_message"):
        if key in texts:
            _check_template(texts[key], f"{where}.{key}")
    api_name = _string(data["api_name"], f"{where}.api_name") if "api_name" in data else None
    if api_name is not None and api_name_problem(api_name):
        raise _fail(f"{where}.api_name", str(api_name_problem(api_name)))
    agent_type = data.get("type", "service")
    if agent_type not in AGENT_TYPES:
        raise _fail(f"{where}.type", f"expected one of {list(AGENT_TYPES)} (service agents run as their agent "
                    f"user, employee agents as the caller's user), got {agent_type!r}")
    flags = {}
    for key, default in (("active", True), ("invalid_config", False)):
        flags[key] = data.get(key, default)
        if not isinstance(flags[key], bool):
            raise _fail(f"{where}.{key}", f"expected true or false, got {flags[key]!r}")
    topics_raw = data.get("topics", [])
    if not isinstance(topics_raw, list):
        raise _fail(f"{where}.topics", "expected a list of topics")
    topics = tuple(_parse_topic(t, f"{where}.topics[{i}]") for i, t in enumerate(topics_raw))
    try:
        return ScriptedAgent(
            agent_id=agent_id,
            name=name,
            greeting=texts.get("greeting", f"Hi, I'm {name}. How can I help you?"),
            latency_ms=float(latency),
            description=texts.get("description", ""),
            fallback=texts.get("fallback", "You said: {text}"),
            cancel_message=texts.get("cancel_message", "Okay, I've cancelled that."),
            context_message=texts.get("context_message", CONTEXT_MESSAGE),
            topics=topics,
            api_name=api_name,
            agent_type=agent_type,
            active=flags["active"],
            invalid_config=flags["invalid_config"],
        )
    except AgentConfigError as exc:
        raise _fail(where, str(exc)) from exc


def _parse_topic(raw: Any, where: str) -> Topic:
    data = _mapping(raw, where, _TOPIC_KEYS)
    keywords_raw = data.get("keywords", [])
    if isinstance(keywords_raw, str):
        keywords_raw = [keywords_raw]
    if not isinstance(keywords_raw, list) or not all(isinstance(k, str) and k.strip() for k in keywords_raw):
        raise _fail(f"{where}.keywords", "expected a list of non-empty strings")
    # One compiled pattern per topic: whole words/phrases, case-insensitive ("hi" must not match "this").
    keywords = (re.compile(r"\b(?:" + "|".join(re.escape(k.strip()) for k in keywords_raw) + r")\b", re.I)
                if keywords_raw else None)
    regex = None
    if "regex" in data:
        try:
            regex = re.compile(_string(data["regex"], f"{where}.regex"), re.I)
        except re.error as exc:
            raise _fail(f"{where}.regex", f"not a valid regular expression ({exc})") from exc
    if keywords is None and regex is None:
        raise _fail(where, "give 'keywords' or 'regex' (or both) so the topic can match")
    if ("reply" in data) == ("steps" in data):
        raise _fail(where, "give exactly one of 'reply' (a text) or 'steps' (a list)")
    steps_raw = [{"inform": data["reply"]}] if "reply" in data else data["steps"]
    if not isinstance(steps_raw, list) or not steps_raw:
        raise _fail(f"{where}.steps", "expected a non-empty list of steps")
    steps = tuple(_parse_step(s, f"{where}.steps[{i}]") for i, s in enumerate(steps_raw))
    name = _string(data["name"], f"{where}.name") if "name" in data else where.rsplit(".", 1)[-1]
    return Topic(name=name, keywords=keywords, regex=regex, steps=steps)


def _parse_step(raw: Any, where: str) -> Step:
    if not isinstance(raw, Mapping) or len(raw) != 1 or next(iter(raw)) not in _STEP_KINDS:
        raise _fail(where, f"a step is a mapping with exactly one key, one of {list(_STEP_KINDS)}; got {raw!r}")
    kind, value = next(iter(raw.items()))
    where = f"{where}.{kind}"
    options = dict(_expand_shorthand(kind, value, where))
    if kind != "remember":
        _mapping(options, where, _STEP_OPTIONS[kind])
    elif not all(isinstance(k, str) and k.isidentifier() for k in options):
        raise _fail(where, "remember: keys must be plain names, e.g. {name: '{name}'}")
    _check_kind(kind, options, where)
    _check_template(options, where)
    return Step(kind=kind, options=options)


def _expand_shorthand(kind: str, value: Any, where: str) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str) and kind in ("inform", "inquire", "confirm"):
        return {"message": value}
    if isinstance(value, str) and kind == "end":
        return {"reason": value}
    if isinstance(value, list) and kind == "escalate":
        return {"targets": value}
    raise _fail(where, f"expected a mapping of options {sorted(_STEP_OPTIONS[kind]) or '(name: template)'}, "
                f"got {value!r}")


def _check_kind(kind: str, options: dict[str, Any], where: str) -> None:
    """Per-kind required options and types; fills defaults that the runner relies on."""
    if kind == "inquire":
        collect = options.get("collect", {"name": "value", "type": "Text"})
        if isinstance(collect, str):
            collect = {"name": collect, "type": "Text"}
        if not isinstance(collect, Mapping) or not str(collect.get("name", "")).isidentifier():
            raise _fail(f"{where}.collect", "expected a slot name (e.g. date) or {name: date, type: Date}")
        options["collect"] = {"type": "Text", **collect}
    elif kind == "action":
        _string(options.get("name"), f"{where}.name")
    elif kind == "fail" and not isinstance(options.get("errors", []), list):
        raise _fail(f"{where}.errors", "expected a list of error texts")
    elif kind == "escalate":
        targets = options.get("targets", [])
        if not isinstance(targets, list) or not all(isinstance(t, Mapping) and "type" in t for t in targets):
            raise _fail(f"{where}.targets", "expected a list like [{type: Queue, value: Service_Desk}]")
    elif kind == "end":
        _string(options.get("reason", "Action"), f"{where}.reason")
