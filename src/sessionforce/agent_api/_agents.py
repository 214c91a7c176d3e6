"""Agents by name: an agent's API name (or label) to its id and type, through the org's REST query.

The Agent API wants an agent id (``0Xx...``); people know their agent as ``Service_Assistant``. The org's
REST API (on My Domain, with the same token) answers ``SELECT ... FROM BotDefinition WHERE DeveloperName
= '...'`` (the query Salesforce's own ``sf agent`` library sends); its ``AgentType`` (or ``Type``) says
whether it is an employee agent, which runs as the token's user and so must be started with
``bypassUser: false``. A value that starts with ``0Xx`` is an id (no API name can: a DeveloperName
starts with a letter) and is used as is, without a query.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote

from sessionforce.agent_api._bodies import path_segment
from sessionforce.agent_api._transport import Transport
from sessionforce.errors._build_agents import agent_lookup_failed, agent_name_ambiguous, agent_name_unknown

__all__ = ["API_VERSION", "AgentInfo", "AgentResolver", "looks_like_agent_id"]

#: The REST API version of the query (BotDefinition has AgentType from v62.0 on).
API_VERSION = "v62.0"
_EMPLOYEE_TYPES = frozenset({"AgentforceEmployeeAgent", "InternalCopilot"})
_FIELDS = "Id, DeveloperName, MasterLabel, Type, AgentType, (SELECT Status FROM BotVersions WHERE Status = 'Active')"


def looks_like_agent_id(value: str) -> bool:
    """Whether ``value`` is an agent id (``0Xx`` and letters or digits; proper ones have 15 or 18 characters)."""
    return value.startswith("0Xx") and value.isascii() and value.isalnum()


@dataclass(frozen=True, slots=True)
class AgentInfo:
    """An agent as the org knows it. Given by id and not looked up, only ``id`` is known."""

    id: str
    api_name: str | None = None
    """Its API name (``BotDefinition.DeveloperName``)."""
    label: str | None = None
    """Its label (``MasterLabel``)."""
    agent_type: str | None = None
    """``AgentType`` (``AgentforceServiceAgent``, ``AgentforceEmployeeAgent``), else ``Type``."""
    active: bool | None = None
    """Whether it has an active version (None: not looked up)."""

    @property
    def employee(self) -> bool | None:
        """Whether it is an employee agent (runs as the token's user); None when the type is unknown."""
        return None if self.agent_type is None else self.agent_type in _EMPLOYEE_TYPES

    @property
    def bypass_user(self) -> bool:
        """The ``bypassUser`` its type calls for: false for employee agents, true otherwise."""
        return self.employee is not True


def _literal(value: str) -> str:
    """``value`` as a SOQL string literal (quotes and backslashes escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _info(record: dict[str, object]) -> AgentInfo:
    def text(key: str) -> str | None:
        value = record.get(key)
        return value if isinstance(value, str) and value else None

    versions = record.get("BotVersions")
    active = isinstance(versions, dict) and bool(versions.get("records"))
    return AgentInfo(id=str(record.get("Id")), api_name=text("DeveloperName"), label=text("MasterLabel"),
                     agent_type=text("AgentType") or text("Type"), active=active)


class AgentResolver:
    """Looks agents up through the org's REST query, remembering what it found (one resolver per client)."""

    def __init__(self, transport: Transport, my_domain: str) -> None:
        self._transport = transport
        self._my_domain = my_domain.rstrip("/")
        self._cache: dict[str, AgentInfo] = {}

    async def resolve(self, name_or_id: str) -> AgentInfo:
        """The agent for ``name_or_id``: an id as is (no query), a name through the query (cached)."""
        if looks_like_agent_id(name_or_id):
            return AgentInfo(id=name_or_id)
        return await self.lookup(name_or_id)

    async def lookup(self, name_or_id: str, *, fresh: bool = False) -> AgentInfo:
        """Query the org for ``name_or_id``: by ``Id`` for an id, else by ``DeveloperName`` or, failing that,
        ``MasterLabel``. Raises ConfigError when no agent matches or a label matches several; errors of the
        query itself (no REST access for the token, ...) raise the matching APIStatusError."""
        path_segment(name_or_id, "agent_id")  # InvalidArgument for what cannot go on the wire at all
        if not fresh and name_or_id in self._cache:
            return self._cache[name_or_id]
        value = _literal(name_or_id)
        where = (f"Id = {value}" if looks_like_agent_id(name_or_id)
                 else f"DeveloperName = {value} OR MasterLabel = {value}")
        records = await self._query(f"SELECT {_FIELDS} FROM BotDefinition WHERE {where} LIMIT 20", name_or_id)
        by_name = [r for r in records if r.get("DeveloperName") == name_or_id or r.get("Id") == name_or_id]
        matches = by_name or records  # an API name wins over labels
        if not matches:
            raise agent_name_unknown(name_or_id, by_id=looks_like_agent_id(name_or_id))
        if len(matches) > 1:
            raise agent_name_ambiguous(name_or_id, [str(r.get("DeveloperName")) for r in matches])
        info = _info(matches[0])
        self._cache[name_or_id] = info
        return info

    async def _query(self, soql: str, name: str) -> list[dict[str, object]]:
        token = await self._transport.token_provider.get_token(self._transport.post_form)
        base = (token.instance_url or self._my_domain).rstrip("/")
        path = f"/services/data/{API_VERSION}/query"
        response = await self._transport.request(
            "GET", path, url=f"{base}{path}?q={quote(soql, safe='')}", idempotent=True, return_errors=True)
        if response.status != 200:
            raise agent_lookup_failed(name, response.status, response.body)
        try:
            data = json.loads(response.body)
            records = data["records"]
        except (ValueError, KeyError, TypeError):
            raise agent_lookup_failed(name, response.status, response.body) from None
        if not isinstance(records, list):
            raise agent_lookup_failed(name, response.status, response.body)
        return [r for r in records if isinstance(r, dict)]
