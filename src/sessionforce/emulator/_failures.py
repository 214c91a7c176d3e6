"""The real service's failure answers the emulator reproduces: one table, each entry with its source.

Used by the routes (an employee agent asked to bypass the user, an inactive agent, a wrong
``instanceConfig.endpoint``, a turn past the request timeout, an opaque token) and by fault rules
(``{route: start_session, error: invalid_config}``), so a failure reads the same however it was caused.
docs/emulator.md lists them with the same sources. Where only the status and the error class or message
are public, the rest of the text is ours and says so in the docs.
"""

from __future__ import annotations

from dataclasses import dataclass

from sessionforce.emulator._errors import ApiError


@dataclass(frozen=True, slots=True)
class Failure:
    """One reproducible failure answer: status, ``error`` class name, message template, where it is from."""

    status: int
    error: str
    message: str
    source: str

    def raise_(self, **values: object) -> ApiError:
        """The ApiError to raise, with the message's ``{placeholders}`` filled from ``values``."""
        return ApiError(self.status, self.message.format(**values), error=self.error)


FAILURES: dict[str, Failure] = {
    # An employee agent runs as the token's user: bypassUser true leaves no user to run as.
    "invalid_user": Failure(400, "AgentApiException", "Invalid user ID provided on start session: ",
                            "forcedotcom/cli#3608, forcedotcom/agents#329"),
    # A broken planner (agent) configuration: the session cannot be set up.
    "invalid_config": Failure(412, "PreconditionFailedException", "Invalid Config",
                              "issue trackers of Salesforce's tools (412 \"Invalid Config\")"),
    # instanceConfig.endpoint is not the org's My Domain URL (e.g. the API host).
    "engine_config": Failure(500, "EngineConfigLookupException",
                             "Unable to look up the engine configuration for endpoint {endpoint}",
                             "Salesforce Agent API troubleshooting page (error EngineConfigLookupException)"),
    # A call the agent did not answer within the request timeout (120 s on the real service).
    "timeout": Failure(500, "HttpServerErrorException",
                       "The request timed out: the agent did not answer within {seconds:g} seconds.",
                       "public Agent API guides: a call past 120 s answers HTTP 500"),
    # An agent id that is not an id at all (e.g. the agent's API name).
    "invalid_agent_id": Failure(400, "BadRequestException", "{agent_id} is not a valid agent ID",
                                "Salesforce Agent API troubleshooting page (\"{VALUE} is not a valid agent ID\")"),
    # An id of no agent, or of an agent without an active version.
    "agent_not_found": Failure(404, "NotFoundException", "Agent not found for agentId: {agent_id}",
                               "agent-api.md (404 on start: agent not found); the text is ours"),
    # A valid but opaque (non-JWT) access token: the Agent API cannot read it and answers a bare 404.
    "opaque_token": Failure(404, "NotFoundException", "Not Found",
                            "Salesforce Agent API troubleshooting page (404: wrong token or endpoint)"),
}

#: The failures a fault rule may inject with ``error: <name>``.
FAULT_ERRORS = tuple(FAILURES)


def failure(name: str, **values: object) -> ApiError:
    """The ApiError of failure ``name`` (see :data:`FAILURES`)."""
    return FAILURES[name].raise_(**values)
