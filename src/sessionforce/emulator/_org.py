"""The org's side (its My Domain host): the OAuth token endpoint and the REST query for agents.

The token endpoint answers client credentials like Salesforce: a JWT-based access token (or an opaque
one, if the emulator was asked for those) with ``instance_url``, ``api_instance_url``, ``id``, ``scope``,
``signature``, ``token_type``, ``issued_at`` and ``token_format``. The REST query
(``GET /services/data/vXX.X/query?q=...``) answers ``BotDefinition``/``BotVersion`` queries for the
emulator's agents, so a client can find an agent by its API name and learn its type (see _soql.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from sessionforce.emulator._agents import EmulatedAgent
from sessionforce.emulator._bodies import read_body
from sessionforce.emulator._errors import ApiError, OAuthError, RestError
from sessionforce.emulator._faults import FaultPlan
from sessionforce.emulator._responses import base_url, json_response
from sessionforce.emulator._soql import parse_query, run_query
from sessionforce.emulator._state import EmulatorState
from sessionforce.emulator._tokens import AGENT_USER_ID, ORG_ID, SCOPE, USER_ID, mint_jwt, mint_opaque

_API_VERSION = re.compile(r"^v\d{2,3}\.\d$")
# When the emulator's agents were "created" (fixed: query results must not change between calls).
_CREATED = "2025-01-15T09:30:00.000+0000"
_DEFINITION_FIELDS = ("Id", "IsDeleted", "DeveloperName", "MasterLabel", "Type", "AgentType", "AgentTemplate",
                      "BotSource", "BotUserId", "Description", "CreatedDate", "CreatedById", "LastModifiedDate",
                      "LastModifiedById", "SystemModstamp")
_VERSION_FIELDS = ("Id", "Status", "IsDeleted", "BotDefinitionId", "DeveloperName", "VersionNumber",
                   "CopilotPrimaryLanguage", "CopilotSecondaryLanguages", "ToneType", "CreatedDate", "CreatedById",
                   "LastModifiedDate", "LastModifiedById", "SystemModstamp")
COLUMNS = {"BotDefinition": {f.lower(): f for f in _DEFINITION_FIELDS},
           "BotVersion": {f.lower(): f for f in _VERSION_FIELDS}}
RELATIONSHIPS = {"BotDefinition": ("BotVersions", "BotVersion")}
#: ``BotDefinition.Type`` and ``AgentType`` per agent type (Salesforce's Object Reference lists Type
#: ``ExternalCopilot`` for external-facing agents; forcedotcom/agents tests ``AgentType`` against
#: ``AgentforceEmployeeAgent`` to choose ``bypassUser``).
TYPES = {"service": ("ExternalCopilot", "AgentforceServiceAgent"),
         "employee": ("InternalCopilot", "AgentforceEmployeeAgent")}


def bot_definition(agent: EmulatedAgent) -> dict[str, Any]:
    """The ``BotDefinition`` record of ``agent``."""
    kind, agent_type = TYPES[agent.agent_type]
    return {"Id": agent.id, "IsDeleted": False, "DeveloperName": agent.api_name, "MasterLabel": agent.name,
            "Type": kind, "AgentType": agent_type, "AgentTemplate": None, "BotSource": None,
            # Employee agents have no agent user (BotUserId is null by design, forcedotcom/cli#3608).
            "BotUserId": AGENT_USER_ID if agent.agent_type == "service" else None,
            "Description": agent.description or None, "CreatedDate": _CREATED, "CreatedById": USER_ID,
            "LastModifiedDate": _CREATED, "LastModifiedById": USER_ID, "SystemModstamp": _CREATED}


def bot_versions(agent: EmulatedAgent) -> list[dict[str, Any]]:
    """The ``BotVersion`` records of ``agent``: one version, active unless the agent is not."""
    version_id = "0X9" + hashlib.sha1(agent.id.encode()).hexdigest()[:15]
    return [{"Id": version_id, "Status": "Active" if agent.active else "Inactive", "IsDeleted": False,
             "BotDefinitionId": agent.id, "DeveloperName": "v1", "VersionNumber": 1,
             "CopilotPrimaryLanguage": "en_US", "CopilotSecondaryLanguages": None, "ToneType": "Casual",
             "CreatedDate": _CREATED, "CreatedById": USER_ID, "LastModifiedDate": _CREATED,
             "LastModifiedById": USER_ID, "SystemModstamp": _CREATED}]


def api_url(state: EmulatorState, request: Request) -> str:
    """The Agent API host for this org: the My Domain URL itself, or the separate API port's URL."""
    if state.api_port is None:
        return base_url(request)
    host = request.url.netloc.rsplit(":", 1)[0] if request.url.port else request.url.netloc
    return f"{request.url.scheme}://{host}:{state.api_port}"


class Org:
    """Handlers for the token endpoint and the REST query, over one :class:`EmulatorState`."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    async def token(self, request: Request, plan: FaultPlan | None) -> Response:
        """``POST /services/oauth2/token``: client credentials, answered like Salesforce."""
        try:
            raw = await read_body(request, self.state.config.max_body_bytes)
        except ApiError as exc:
            raise OAuthError(exc.status, "invalid_request", exc.message) from None
        try:
            form = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            form = {}
        if form.get("grant_type") != "client_credentials":
            raise OAuthError(400, "unsupported_grant_type", "grant type not supported")
        client_id, secret = form.get("client_id"), form.get("client_secret")
        basic = request.headers.get("authorization", "")
        if client_id is None and basic.lower().startswith("basic "):
            try:
                client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                client_id = None
        config = self.state.config
        if client_id != config.client_id or secret != config.client_secret:
            raise OAuthError(401, "invalid_client", "invalid client credentials")
        url = base_url(request)
        issued_ms = self.state.clock.wall_ms()
        jwt = config.token_format == "jwt"
        token = (mint_jwt(my_domain=url, api_url=api_url(self.state, request), client_id=config.client_id,
                          issued_ms=issued_ms, ttl=config.token_ttl) if jwt else mint_opaque())
        self.state.add_token(token, jwt=jwt)
        issued_at = str(issued_ms)
        identity = f"{url}/id/{ORG_ID}/{USER_ID}"
        signature = hmac.new(config.client_secret.encode(), (identity + issued_at).encode(), hashlib.sha256)
        body = {
            "access_token": token,
            "signature": base64.b64encode(signature.digest()).decode(),
            "scope": SCOPE,
            "instance_url": url,
            "api_instance_url": api_url(self.state, request),
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
        }
        if jwt:
            body["token_format"] = "jwt"
        return json_response(body)

    async def query(self, request: Request, plan: FaultPlan | None) -> Response:
        """``GET /services/data/vXX.X/query?q=SOQL``: agents as ``BotDefinition``/``BotVersion`` records."""
        version = request.path_params["version"]
        if not _API_VERSION.match(version):
            raise RestError(404, "NOT_FOUND", "The requested resource does not exist")
        try:
            self.state.check_token(request.headers.get("authorization"))
        except ApiError:
            raise RestError(401, "INVALID_SESSION_ID", "Session expired or invalid") from None
        text = request.query_params.get("q")
        if not text:
            raise RestError(400, "MALFORMED_QUERY", "A query string has to be specified")
        if len(text) > 100_000:
            raise RestError(431, "QUERY_TOO_COMPLICATED", "Query is either selecting too many fields or the filter "
                            "conditions are too complicated.")
        query = parse_query(text, COLUMNS, RELATIONSHIPS)
        agents = list(self.state.agents.values())
        records = {"BotDefinition": [bot_definition(a) for a in agents],
                   "BotVersion": [v for a in agents for v in bot_versions(a)]}

        def link(child: str, parent: dict[str, Any]) -> list[dict[str, Any]]:
            return [r for r in records[child] if r.get("BotDefinitionId") == parent["Id"]]

        def url(sobject: str, record: dict[str, Any]) -> str:
            return f"/services/data/{version}/sobjects/{sobject}/{record['Id']}"

        return json_response(run_query(query, records.__getitem__, link, url))
