"""Bad input: the CLI's scenario (YAML) loader and the profile (TOML) config loader, fuzzed with hypothesis.

Each input either loads, or fails with our own error (:class:`ScenarioError` / :class:`ConfigError`) whose
message names the file: never a raw yaml/tomllib/pydantic exception, never a traceback. The third parser
the issue names, the SSE parser, is fuzzed where it lives: ``tests/client/test_sse_parser.py``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessionforce.cli.scenario import ScenarioError, Suite, load_suite
from sessionforce.config import PROFILE_KEYS, load_profiles, resolve, select_profile
from sessionforce.errors import ConfigError

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@contextmanager
def written(name: str, content: str | bytes) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
        yield path


# ------------------------------------------------------------------ scenario files

_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
_keys = st.sampled_from(["agent", "vars", "variables", "conversations", "name", "turns", "say", "answer", "expect",
                         "type", "contains", "action", "regex", "bogus", "${x}"])
_yamlish = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                          st.dictionaries(_keys, inner, max_size=5)), max_leaves=25)
_turn = st.fixed_dictionaries({}, optional={"say": _yamlish, "answer": _yamlish, "expect": _yamlish,
                                            "bogus": _scalars})
_suite = st.fixed_dictionaries(
    {"conversations": st.one_of(_yamlish, st.lists(st.fixed_dictionaries(
        {"turns": st.one_of(_yamlish, st.lists(_turn, max_size=3))}, optional={"name": _yamlish}), max_size=3))},
    optional={"agent": _yamlish, "vars": _yamlish, "variables": _yamlish},
)


def _load_suite_or_our_error(content: str | bytes) -> None:
    with written("suite.yaml", content) as path:
        message = ""
        try:
            suite = load_suite(path)
        except ScenarioError as exc:
            message = str(exc)
        else:
            assert isinstance(suite, Suite)
        if message:
            assert str(path) in message, message


@FUZZ
@given(st.text(max_size=300))
def test_scenario_loader_survives_any_text(text: str) -> None:
    _load_suite_or_our_error(text)


@FUZZ
@given(st.binary(max_size=200))
def test_scenario_loader_survives_any_bytes(data: bytes) -> None:
    _load_suite_or_our_error(data)


def test_scenario_loader_names_a_file_that_is_not_utf8() -> None:
    _load_suite_or_our_error(b"conversations: \x80\n")


@FUZZ
@given(_suite)
def test_scenario_loader_survives_wrong_shapes(document: dict[str, Any]) -> None:
    _load_suite_or_our_error(yaml.safe_dump(document, allow_unicode=True))


# ------------------------------------------------------------------ profile (config) files

_toml_value = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters='"\\\n\r'), max_size=20).map(
        lambda s: f'"{s}"'),
    st.integers().map(str), st.booleans().map(lambda b: str(b).lower()), st.just("[1, 2]"), st.just("{a = 1}"),
    st.text(max_size=10),  # often not TOML at all
)
_toml_key = st.one_of(st.sampled_from([*PROFILE_KEYS, "default_profile", "bogus"]), st.text(max_size=8))
_toml_line = st.one_of(
    st.builds(lambda k, v: f"{k} = {v}", _toml_key, _toml_value),
    st.builds(lambda n: f"[profiles.{n}]", st.sampled_from(["dev", "default", "a b", "", "x.y"])),
    st.sampled_from(["[profiles]", "profiles = 3", 'default_profile = "dev"', "default_profile = 3", "[other]"]),
)


def _load_profiles_or_our_error(content: str | bytes) -> None:
    with written("config.toml", content) as path:
        previous = os.environ.get("SESSIONFORCE_CONFIG")
        os.environ["SESSIONFORCE_CONFIG"] = str(path)
        try:
            profiles, _ = load_profiles(path)
            assert all(isinstance(v, str) for p in profiles.values() for v in p.values.values())
            select_profile(None, path)
            resolve()
        except ConfigError:
            pass  # our own error: what this test wants (any other exception fails it)
        finally:
            if previous is None:
                os.environ.pop("SESSIONFORCE_CONFIG", None)
            else:
                os.environ["SESSIONFORCE_CONFIG"] = previous


@FUZZ
@given(st.text(max_size=300))
def test_config_loader_survives_any_text(text: str) -> None:
    _load_profiles_or_our_error(text)


@FUZZ
@given(st.lists(_toml_line, max_size=12))
def test_config_loader_survives_wrong_shapes(lines: list[str]) -> None:
    _load_profiles_or_our_error("\n".join(lines) + "\n")


@FUZZ
@given(st.binary(max_size=200))
def test_config_loader_survives_any_bytes(data: bytes) -> None:
    _load_profiles_or_our_error(data)


def test_config_loader_names_a_file_that_is_not_utf8() -> None:
    _load_profiles_or_our_error(b"[profiles.dev]\nmy_domain = \"\x80\"\n")
