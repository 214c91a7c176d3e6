"""Access tokens shaped like Salesforce's: JWT-based (what the Agent API needs) or opaque.

A JWT-based token is three base64url segments: a header (``alg: RS256``, ``typ: JWT``, ``kid``, ``tty:
sfdc-core-token``, ``tnk``, ``ver``), claims (``iss``, ``sub``, ``aud``, ``scp``, ``client_id``, ``mty``,
``iat``, ``nbf``, ``exp``, ...) and a 256-byte signature, as Salesforce's "JWT-Based Access Tokens" help
page describes them; real ones run past 800 characters, and so do ours. The signature is random bytes,
not a real RS256 signature: the emulator recognises its tokens by keeping them, not by verifying them.
An opaque token is ``<org id>!<random>``, the traditional Salesforce format.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping

ORG_ID = "00DSF0000000EMUAAA"
USER_ID = "005SF0000000EMUAAA"
#: The agent user service agents run as (``BotDefinition.BotUserId``).
AGENT_USER_ID = "005SF0000000AGTAAA"
SCOPE = "api sfap_api chatbot_api"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _segment(document: Mapping[str, object]) -> str:
    return _b64url(json.dumps(document, separators=(",", ":")).encode())


def mint_jwt(*, my_domain: str, api_url: str, client_id: str, issued_ms: int, ttl: float) -> str:
    """A JWT-shaped access token issued by ``my_domain`` for ``api_url``, living ``ttl`` seconds."""
    issued = issued_ms // 1000
    header = {"tnk": f"core/emulator/{ORG_ID}", "ver": "1.0", "kid": f"CORE_ATJWT.{ORG_ID}.emulator",
              "tty": "sfdc-core-token", "typ": "JWT", "alg": "RS256"}
    claims = {
        "scp": SCOPE,
        "aud": [api_url],
        "sub": f"uid:{USER_ID}",
        "nbf": issued,
        "mty": "oauth",
        "sfi": secrets.token_hex(32),
        "roles": [],
        "iss": my_domain,
        "hsc": False,
        "exp": issued + int(ttl),
        "iat": issued,
        "client_id": client_id,
        "jti": secrets.token_urlsafe(16),
    }
    return f"{_segment(header)}.{_segment(claims)}.{_b64url(secrets.token_bytes(256))}"


def mint_opaque() -> str:
    """An opaque access token in Salesforce's traditional ``<org id>!<random>`` format."""
    return f"{ORG_ID[:15]}!{secrets.token_urlsafe(72)}"
