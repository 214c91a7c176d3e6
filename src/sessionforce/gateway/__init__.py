"""The gateway: `sessionforce serve`, the backend between browsers (or bots) and an Agentforce agent.

End users hold short-lived tokens scoped to their conversations; the org's credentials stay here. Each
message carries the client's own id, so a retried POST never reaches the agent twice; every event of a
conversation has an id, so a dropped event stream re-attaches, on any worker, and misses nothing. See
docs/gateway.md.

    from sessionforce.gateway import GatewayConfig, run_gateway, mint_token

The HTTP API is documented in docs/gateway.md and served as OpenAPI at ``/openapi.json``.
"""

from sessionforce.gateway._app import Gateway, GatewayConfig, create_app
from sessionforce.gateway._config import GatewaySettings, SigningKey
from sessionforce.gateway._server import RunningGateway, bind, run_gateway, serve
from sessionforce.gateway._tokens import mint_token

__all__ = [
    "Gateway",
    "GatewayConfig",
    "GatewaySettings",
    "RunningGateway",
    "SigningKey",
    "bind",
    "create_app",
    "mint_token",
    "run_gateway",
    "serve",
]
