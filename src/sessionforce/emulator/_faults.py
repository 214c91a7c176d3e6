"""Fault injection: rules that make chosen requests slow, fail, drop or expire, deterministically.

A faults document (YAML/JSON file, ``PUT /__emulator/faults`` or ``run_emulator(faults=...)``)::

    seed: 42
    rules:
      - {route: send_message, status: 503, every: 3, times: 2}
      - {route: stream_message, drop_after_chunks: 2}
      - {route: start_session, error: invalid_config, times: 1}

Each rule counts the requests on its route; it fires on every one, every Nth, or with a probability
drawn from one RNG seeded by ``seed`` (so a run repeats exactly), at most ``times`` times.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sessionforce.emulator._failures import FAULT_ERRORS

#: Route names used by fault rules and the request counters.
ROUTES = ("token", "query", "start_session", "send_message", "stream_message", "end_session", "feedback")
_RULE_KEYS = {"route", "status", "every", "probability", "times", "retry_after", "latency_ms",
              "drop_after_chunks", "reset", "expire_session", "expire_token", "error"}
_ACTIONS = ("status", "error", "latency_ms", "drop_after_chunks", "reset", "expire_session", "expire_token")


class FaultConfigError(ValueError):
    """A faults document is invalid; the message names the rule, the field and the fix."""


@dataclass
class FaultRule:
    """One rule: which route, when it fires, and what it does."""

    route: str
    every: int | None = None
    probability: float | None = None
    times: int | None = None
    status: int | None = None
    retry_after: float | None = None
    #: A real failure answer by name (see _failures.py), e.g. ``invalid_config``.
    error: str | None = None
    latency_ms: float = 0.0
    drop_after_chunks: int | None = None
    reset: str | None = None
    expire_session: bool = False
    expire_token: bool = False
    matched: int = 0
    fired: int = 0

    def describe(self) -> dict[str, Any]:
        """The rule as ``GET /__emulator/faults`` shows it (only what was set, plus its counts)."""
        data = {k: v for k, v in self.__dict__.items() if v not in (None, False, 0.0) or k == "route"}
        data.update(matched=self.matched, fired=self.fired)
        return data


@dataclass
class FaultPlan:
    """What the rules decided for one request."""

    status: int | None = None
    retry_after: float | None = None
    error: str | None = None
    latency_ms: float = 0.0
    drop_after_chunks: int | None = None
    reset: str | None = None
    expire_session: bool = False
    expire_token: bool = False


@dataclass
class FaultSet:
    """The active rules and their seeded random source."""

    seed: int
    rules: list[FaultRule] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    @classmethod
    def empty(cls, seed: int = 0) -> FaultSet:
        """No faults."""
        return cls(seed=seed)

    def decide(self, route: str) -> FaultPlan | None:
        """Count this request against matching rules; the plan of those that fire (None if none)."""
        if not self.rules:
            return None
        plan: FaultPlan | None = None
        for rule in self.rules:
            if rule.route != route and rule.route != "any":
                continue
            rule.matched += 1
            if rule.times is not None and rule.fired >= rule.times:
                continue
            if rule.every is not None:
                fires = rule.matched % rule.every == 0
            elif rule.probability is not None:
                fires = self.rng.random() < rule.probability
            else:
                fires = True
            if not fires:
                continue
            rule.fired += 1
            plan = plan or FaultPlan()
            _merge(plan, rule)
        return plan

    def describe(self) -> dict[str, Any]:
        """The document as ``GET /__emulator/faults`` answers."""
        return {"seed": self.seed, "rules": [rule.describe() for rule in self.rules]}


def _merge(plan: FaultPlan, rule: FaultRule) -> None:
    # The first status (or named error) and reset win; latencies add up; expiries are flags.
    if rule.status is not None and plan.status is None and plan.error is None:
        plan.status, plan.retry_after = rule.status, rule.retry_after
    if rule.error is not None and plan.status is None and plan.error is None:
        plan.error = rule.error
    plan.latency_ms += rule.latency_ms
    if rule.drop_after_chunks is not None and plan.drop_after_chunks is None:
        plan.drop_after_chunks = rule.drop_after_chunks
    plan.reset = plan.reset or rule.reset
    plan.expire_session = plan.expire_session or rule.expire_session
    plan.expire_token = plan.expire_token or rule.expire_token


def load_faults(source: str | Path | Mapping[str, Any] | None, default_seed: int = 0) -> FaultSet:
    """Parse a faults document from a path (YAML or JSON) or a mapping; None = no faults."""
    if source is None:
        return FaultSet.empty(default_seed)
    if isinstance(source, Mapping):
        return parse_faults(source, "faults", default_seed)
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FaultConfigError(f"{path}: cannot read the faults file ({exc.strerror or exc})") from exc
    try:
        document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except RecursionError:
        raise FaultConfigError(f"{path}: nested too deeply to be a faults document") from None
    except (yaml.YAMLError, ValueError) as exc:
        kind = "JSON" if path.suffix == ".json" else "YAML"
        raise FaultConfigError(f"{path}: not valid {kind} ({' '.join(str(exc).split())})") from exc
    return parse_faults(document, str(path), default_seed)


def parse_faults(document: Any, where: str, default_seed: int = 0) -> FaultSet:
    """Check a faults document and build its :class:`FaultSet`, or raise :class:`FaultConfigError`."""
    if document is None:
        document = {}
    if not isinstance(document, Mapping):
        raise FaultConfigError(f"{where}: expected a mapping with 'rules:' (and optional 'seed:')")
    unknown = sorted(set(document) - {"seed", "rules"})
    if unknown:
        raise FaultConfigError(f"{where}: unknown key(s) {unknown}; allowed: ['rules', 'seed']")
    seed = document.get("seed", default_seed)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise FaultConfigError(f"{where}: seed: expected an integer, got {seed!r}")
    rules_raw = document.get("rules", [])
    if not isinstance(rules_raw, list):
        raise FaultConfigError(f"{where}: rules: expected a list of rules")
    return FaultSet(seed=seed, rules=[_parse_rule(r, f"{where}: rules[{i}]") for i, r in enumerate(rules_raw)])


def _number(data: Mapping[str, Any], key: str, where: str, *, integer: bool, low: float,
            high: float | None = None) -> Any:
    value: Any = data[key]
    kinds: tuple[type, ...] = (int,) if integer else (int, float)
    valid = not isinstance(value, bool) and isinstance(value, kinds)
    if not valid or value < low or (high is not None and value > high):
        span = f"{low}..{high}" if high is not None else f">= {low}"
        raise FaultConfigError(f"{where}.{key}: expected {'an integer' if integer else 'a number'} {span}, "
                               f"got {value!r}")
    return value


def _parse_rule(raw: Any, where: str) -> FaultRule:
    if not isinstance(raw, Mapping):
        raise FaultConfigError(f"{where}: expected a mapping like {{route: send_message, status: 503}}")
    unknown = sorted(str(k) for k in raw if k not in _RULE_KEYS)
    if unknown:
        raise FaultConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_RULE_KEYS)}")
    route = raw.get("route")
    if route not in (*ROUTES, "any"):
        raise FaultConfigError(f"{where}.route: expected one of {[*ROUTES, 'any']}, got {route!r}")
    if not any(key in raw for key in _ACTIONS):
        raise FaultConfigError(f"{where}: says when but not what; add one of {list(_ACTIONS)}")
    if "status" in raw and "error" in raw:
        raise FaultConfigError(f"{where}: give 'status' or 'error', not both")
    if "every" in raw and "probability" in raw:
        raise FaultConfigError(f"{where}: give 'every' or 'probability', not both")
    rule = FaultRule(route=route)
    if "every" in raw:
        rule.every = _number(raw, "every", where, integer=True, low=1)
    if "probability" in raw:
        rule.probability = float(_number(raw, "probability", where, integer=False, low=0, high=1))
    if "times" in raw:
        rule.times = _number(raw, "times", where, integer=True, low=1)
    if "status" in raw:
        rule.status = _number(raw, "status", where, integer=True, low=400, high=599)
    if "error" in raw:
        if raw["error"] not in FAULT_ERRORS:
            raise FaultConfigError(f"{where}.error: expected one of {list(FAULT_ERRORS)} (the real service's "
                                   f"failure answers, see docs/emulator.md), got {raw['error']!r}")
        rule.error = raw["error"]
    if "retry_after" in raw:
        rule.retry_after = float(_number(raw, "retry_after", where, integer=False, low=0))
    if "latency_ms" in raw:
        rule.latency_ms = float(_number(raw, "latency_ms", where, integer=False, low=0))
    if "drop_after_chunks" in raw:
        rule.drop_after_chunks = _number(raw, "drop_after_chunks", where, integer=True, low=0)
    if "reset" in raw:
        if raw["reset"] not in ("before", "after"):
            raise FaultConfigError(f"{where}.reset: expected 'before' (turn not processed) or 'after' "
                                   f"(turn processed, answer cut), got {raw['reset']!r}")
        rule.reset = raw["reset"]
    for flag in ("expire_session", "expire_token"):
        if flag in raw:
            if not isinstance(raw[flag], bool):
                raise FaultConfigError(f"{where}.{flag}: expected true or false, got {raw[flag]!r}")
            setattr(rule, flag, raw[flag])
    return rule
