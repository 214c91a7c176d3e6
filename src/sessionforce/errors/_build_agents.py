"""The errors of looking agents up by name (the org's REST query), built here beside ``_build.py``.

Split from ``_build.py`` only for its length: same rules (plain values in, the text, the class and the
truth about delivery out; the wire formats no error text of its own).
"""

from __future__ import annotations

from sessionforce.errors._build import error_from_status
from sessionforce.errors._tree import (
    AuthError,
    ConfigError,
    Delivery,
    PermissionDenied,
    ProtocolError,
    SessionforceError,
)

__all__ = ["agent_lookup_failed", "agent_name_ambiguous", "agent_name_unknown"]


def agent_name_unknown(name: str, *, by_id: bool = False) -> ConfigError:
    """No agent in the org has ``name`` as its API name or label (or, ``by_id``, as its id)."""
    what = f"the id {name!r}" if by_id else f"the API name or label {name!r}"
    return ConfigError(f"No agent in the org has {what} (looked up in BotDefinition). What to do: check it in "
                       "Setup > Agents, or give the agent's id (0Xx...).")


def agent_name_ambiguous(name: str, api_names: list[str]) -> ConfigError:
    """Several agents carry ``name`` as their label."""
    return ConfigError(
        f"Several agents are labelled {name!r} ({', '.join(sorted(api_names))}). What to do: give one by its "
        "API name or its id (0Xx...)."
    )


def agent_lookup_failed(name: str, status: int, body: bytes) -> SessionforceError:
    """The org's REST query for agent ``name`` failed (status ``status``); nothing was sent to the agent."""
    if status in (401, 403):
        refused = "was refused by the org's REST API"
        advice = "give the External Client App the 'api' OAuth scope (REST API access), or give the agent's id"
    else:
        refused = f"failed: the org's REST API answered {status}" + (" without records" if status == 200 else "")
        advice = "check SF_MY_DOMAIN is the org's My Domain URL, or give the agent's id"
    cls = {200: ProtocolError, 401: AuthError, 403: PermissionDenied}.get(status) or type(
        error_from_status(status, None))
    return cls(f"Looking up agent {name!r} by name {refused}. What to do: {advice} (0Xx...), which needs no lookup.",
               status=status, body=body, delivery=Delivery.NOT_SENT)
