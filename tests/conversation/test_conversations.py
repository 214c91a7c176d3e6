"""`Conversations`, the manager: what it owns and closes, and how its defaults meet `get`'s options."""

from __future__ import annotations

from pathlib import Path

import pytest

from sessionforce import AsyncAgentClient, BlockingConversations, ClientSettings, Conversations
from sessionforce.config import ENV_NAMES
from sessionforce.emulator import RunningEmulator
from sessionforce.errors import InvalidArgument
from sessionforce.lifecycle import ReplayResume
from sessionforce.store import MemoryStore
from tests.support import client_kwargs


async def test_a_manager_made_without_a_client_builds_one_from_the_settings_and_closes_it(
    emu: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    kwargs = client_kwargs(emu)
    for name in ("my_domain", "client_id", "client_secret", "agent_id", "base_url"):
        if kwargs.get(name) is not None:
            monkeypatch.setenv(ENV_NAMES[name], str(kwargs[name]))
    async with Conversations(store="memory://") as conversations:
        assert (await conversations.get("own-client").send("ping")).text == "You said: ping"
        client = conversations.client
        store = conversations.store
        assert store is conversations.store  # opened once
        await conversations.get("own-client").end()
    assert client.transport.closed


async def test_what_was_passed_in_stays_open(client: AsyncAgentClient) -> None:
    store = MemoryStore()
    async with Conversations(client, store=store) as conversations:
        assert conversations.store is store
        await conversations.get("passed-in").send("hi")
        await conversations.get("passed-in").end()
    assert not client.transport.closed
    assert await store.load("passed-in") is not None


async def test_defaults_apply_to_every_conversation_and_get_overrides_them(client: AsyncAgentClient) -> None:
    conversations = Conversations(client, store=MemoryStore(), resume="replay", lock_wait=5)
    default = conversations.get("a")
    assert default.options.lock_wait == 5
    assert isinstance(default.options.resume, ReplayResume)
    assert conversations.get("b").options is default.options  # one shared options object
    overridden = conversations.get("c", lock_wait=1, resume="none")
    assert overridden.options.lock_wait == 1
    assert not isinstance(overridden.options.resume, ReplayResume)
    assert conversations.get("d").options.lock_wait == 5  # the defaults are unchanged


def test_an_unknown_option_is_refused_when_the_manager_is_made(client: AsyncAgentClient) -> None:
    with pytest.raises(InvalidArgument, match="lock_wiat"):
        Conversations(client, store=MemoryStore(), lock_wiat=5)
    with pytest.raises(InvalidArgument, match="idle"):
        Conversations(client, store=MemoryStore()).get("x", idle=5)


def test_blocking_conversations_mirror_the_async_manager(sync_conversations: BlockingConversations) -> None:
    conversation = sync_conversations.get("desk-3", lock_wait=7)
    assert conversation.async_conversation.options.lock_wait == 7
    assert conversation.send("ping").text == "You said: ping"
    assert conversation.end()


def test_settings_fall_back_to_the_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for env in ENV_NAMES.values():
        monkeypatch.delenv(env, raising=False)
    monkeypatch.delenv("SESSIONFORCE_PROFILE", raising=False)
    config = tmp_path / "config.toml"
    config.write_text(
        'default_profile = "dev"\n[profiles.dev]\nmy_domain = "https://dev.my.salesforce.com"\nagent_id = "0XxDEV"\n'
        '[profiles.prod]\nmy_domain = "https://prod.my.salesforce.com"\n'
    )
    monkeypatch.setenv("SESSIONFORCE_CONFIG", str(config))
    assert ClientSettings.load().my_domain == "https://dev.my.salesforce.com"
    assert ClientSettings.load(profile="prod").my_domain == "https://prod.my.salesforce.com"
    assert ClientSettings.load(agent_id="0XxARG").agent_id == "0XxARG"  # arguments win
    monkeypatch.setenv("SF_AGENT_ID", "0XxENV")
    assert ClientSettings.load().agent_id == "0XxENV"  # then the environment
