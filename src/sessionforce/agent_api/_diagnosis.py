"""The known causes of the Agent API's set-up failures, each with its fix: one table, read by the wire's
error building (when the cause is certain) and by ``sessionforce doctor`` (which checks each one).

The Agent API answers most set-up mistakes with a bare status: a 404 for an opaque token, a 400 for an
employee agent started with ``bypassUser: true``, a 500 for the wrong ``instanceConfig.endpoint``. Each
entry below is a cause that can be recognised for certain from what the client knows (its token, the
call, the answer), and the one fix that removes it. Sources: docs/emulator.md, "Failure modes".
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

from sessionforce.errors import SessionforceError

__all__ = ["CAUSES", "Diagnosis", "diagnose", "diagnose_error", "jwt_shaped"]


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """A recognised cause of a failure, and its fix."""

    key: str
    cause: str
    fix: str


CAUSES: dict[str, Diagnosis] = {d.key: d for d in (
    Diagnosis(
        "opaque_token",
        "the access token is opaque, not JWT-based, and the Agent API answers 404 to opaque tokens",
        "in Setup, open the External Client App (or connected app) of SF_CLIENT_ID, turn on \"Issue JSON Web "
        "Token (JWT)-based access tokens for named users\" in its OAuth settings, and fetch a new token",
    ),
    Diagnosis(
        "wrong_api_host",
        "the Agent API was called on a host that does not serve it (the My Domain answers \"URL No Longer "
        "Exists\")",
        "unset SESSIONFORCE_BASE_URL (sessionforce then uses the token's api_instance_url), or set it to the "
        "Agent API host, e.g. https://api.salesforce.com",
    ),
    Diagnosis(
        "employee_bypass_user",
        "the agent is an employee agent, which runs as the token's user, and it was started with "
        "bypassUser=true (run as the agent's own user, which an employee agent does not have)",
        "start it with bypass_user=False; sessionforce chooses that by itself when the agent's type is known "
        "(give the agent by its API name, or leave bypass_user unset)",
    ),
    Diagnosis(
        "engine_config",
        "instanceConfig.endpoint (SF_MY_DOMAIN) is not the org's My Domain URL (often the Agent API host is "
        "given instead)",
        "set SF_MY_DOMAIN to the Current My Domain URL from Setup > My Domain, e.g. "
        "https://acme.my.salesforce.com",
    ),
    Diagnosis(
        "invalid_config",
        "the agent's planner configuration is broken (the Agent API answers 412 Invalid Config)",
        "open the agent in Agentforce Builder, fix what it reports, and activate it again",
    ),
    Diagnosis(
        "invalid_agent_id",
        "the agent was given by something that is not an agent id (an id starts with 0Xx and has 15 or 18 "
        "characters)",
        "give the agent's id from Setup > Agents, or its API name (sessionforce looks the id up)",
    ),
    Diagnosis(
        "agent_not_found",
        "no agent with this id is active in the org (a wrong id, an agent of another org, or one without an "
        "active version)",
        "check the id in Setup > Agents and activate the agent; `sessionforce doctor` tells these apart",
    ),
    Diagnosis(
        "agent_inactive",
        "the agent exists but has no active version",
        "activate the agent in Setup > Agents (or Agentforce Builder)",
    ),
    Diagnosis(
        "unknown_agent_name",
        "no agent in the org has this API name (DeveloperName) or label (MasterLabel)",
        "check the name in Setup > Agents, or give the agent's 0Xx... id",
    ),
)}

_INVALID_USER = "invalid user id provided on start session"
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")


def jwt_shaped(token: str) -> bool:
    """Whether ``token`` looks like a JWT: three base64url segments, the first a JSON header with ``alg``."""
    parts = token.split(".")
    if len(parts) != 3 or not all(_SEGMENT.match(p) for p in parts):
        return False
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except (ValueError, binascii.Error):
        return False
    return isinstance(header, dict) and "alg" in header


def _error_class(body: bytes) -> str:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, str) else ""


def diagnose(status: int, body: bytes, message: str | None, *, starting: bool, token: str | None) -> Diagnosis | None:
    """The certain cause of an Agent API error answer, or None when it is not certain.

    ``starting``: the call was start-session (before any session exists, so a 404 is not an expiry);
    ``token``: the bearer token the call carried (only its shape is read).
    """
    text = (message or "").lower()
    if starting and status == 404:
        if token is not None and not jwt_shaped(token):
            return CAUSES["opaque_token"]
        if b"URL No Longer Exists" in body[:2000]:
            return CAUSES["wrong_api_host"]
        return None
    if status == 400 and _INVALID_USER in text:
        return CAUSES["employee_bypass_user"]
    if status == 400 and starting and "is not a valid agent id" in text:
        return CAUSES["invalid_agent_id"]
    if status == 412 and "invalid config" in text:
        return CAUSES["invalid_config"]
    if status >= 500 and _error_class(body) == "EngineConfigLookupException":
        return CAUSES["engine_config"]
    return None


def diagnose_error(error: SessionforceError, *, starting: bool, token: str | None) -> Diagnosis | None:
    """:func:`diagnose` for an error sessionforce raised (its status, raw body and message)."""
    if error.status is None:
        return None
    body = error.body.encode() if isinstance(error.body, str) else error.body or b""
    return diagnose(error.status, body, error.message, starting=starting, token=token)
