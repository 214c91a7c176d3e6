"""End-user tokens: short-lived HS256 JWTs scoped to the conversations their holder may touch.

Signed and read with PyJWT. The algorithm is fixed (``HS256``) on both sides, so a token cannot choose
its own (``alg: none``, or a public key passed off as an HMAC secret); the key is chosen by the header's
``kid`` among the configured keys (several verify at once: rotate by adding the new key first, then
dropping the old one once the longest token lifetime has passed).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

import jwt
from pydantic import SecretStr

from sessionforce.errors import InvalidArgument
from sessionforce.gateway._config import SigningKey

__all__ = ["ISSUER", "EndUser", "TokenVerifier", "mint_token", "valid_conversation_id"]

ISSUER = AUDIENCE = "sessionforce-gateway"
ALGORITHM = "HS256"
LEEWAY = 5.0
"""Seconds of clock skew tolerated between the hosts that mint and read tokens."""
MAX_CONVERSATIONS = 50

_CONVERSATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}").fullmatch


def valid_conversation_id(value: object) -> bool:
    """Whether ``value`` is a conversation id the gateway accepts: 1-128 of ``A-Z a-z 0-9 . _ : @ -``,
    starting with a letter or digit (it goes into URLs, store keys and logs as it is)."""
    return isinstance(value, str) and _CONVERSATION_ID(value) is not None


@dataclass(frozen=True, slots=True)
class EndUser:
    """What a verified token says: who holds it and what it may touch."""

    user: str
    conversations: tuple[str, ...]
    issued_at: float
    expires_at: float

    def may_touch(self, conversation_id: str) -> bool:
        """Whether the token is scoped to ``conversation_id``."""
        return conversation_id in self.conversations


class TokenError(Exception):
    """A token that cannot be used; ``expired`` tells the only thing a caller learns about why."""

    def __init__(self, expired: bool) -> None:
        super().__init__("expired" if expired else "invalid")
        self.expired = expired


def _key(key: SigningKey | SecretStr | str) -> SigningKey:
    if isinstance(key, SigningKey):
        return key
    return SigningKey(key if isinstance(key, SecretStr) else SecretStr(key))


def mint_token(
    key: SigningKey | SecretStr | str,
    *,
    user: str,
    conversations: Sequence[str],
    ttl: float = 900.0,
    now: float | None = None,
) -> str:
    """A signed end-user token for ``user``, scoped to ``conversations``, valid ``ttl`` seconds.

    No round trip: an application backend holding the gateway's signing key can mint tokens itself
    (``POST /v1/tokens`` does the same with an API key instead). Raises :class:`InvalidArgument` for
    an empty user, a malformed conversation id or a ttl that is not positive.
    """
    if not isinstance(user, str) or not user.strip() or len(user) > 200:
        raise InvalidArgument("user must be a non-empty string of at most 200 characters (the end user's id).")
    if isinstance(conversations, str) or not conversations or len(conversations) > MAX_CONVERSATIONS:
        raise InvalidArgument(f"conversations must be a list of 1 to {MAX_CONVERSATIONS} conversation ids.")
    bad = [c for c in conversations if not valid_conversation_id(c)]
    if bad:
        raise InvalidArgument(
            f"conversation id {str(bad[0])[:40]!r} is malformed: use 1-128 letters, digits and . _ : @ - "
            "(starting with a letter or digit)."
        )
    if not ttl > 0:
        raise InvalidArgument(f"ttl must be a number of seconds greater than 0, got {ttl!r}.")
    signing = _key(key)
    issued = time.time() if now is None else now
    claims = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": user, "conv": list(dict.fromkeys(conversations)),
        "iat": int(issued), "exp": int(issued + ttl), "jti": secrets.token_urlsafe(12),
    }
    return jwt.encode(claims, signing.secret.get_secret_value(), algorithm=ALGORITHM, headers={"kid": signing.kid})


class TokenVerifier:
    """Reads tokens signed by any of ``keys`` (the first is the one :meth:`mint` signs with)."""

    def __init__(self, keys: Sequence[SigningKey]) -> None:
        if not keys:
            raise InvalidArgument("A token verifier needs at least one signing key.")
        self._signing = keys[0]
        self._keys = {key.kid: key.secret.get_secret_value() for key in keys}

    def mint(self, user: str, conversations: Sequence[str], ttl: float) -> str:
        """A token signed with the current signing key."""
        return mint_token(self._signing, user=user, conversations=conversations, ttl=ttl)

    def verify(self, token: str) -> EndUser:
        """The token's holder and scope; :class:`TokenError` for anything that is not a valid, current
        token of ours (bad signature, unknown key, wrong issuer or audience, expired, malformed)."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            secret = self._keys.get(kid) if isinstance(kid, str) else None
            if secret is None:
                raise TokenError(expired=False)
            claims = jwt.decode(
                token, secret, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER, leeway=LEEWAY,
                options={"require": ["iss", "aud", "sub", "iat", "exp", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError(expired=True) from None
        except jwt.PyJWTError:
            raise TokenError(expired=False) from None
        conversations = claims.get("conv")
        user = claims.get("sub")
        if (
            not isinstance(conversations, list) or not all(valid_conversation_id(c) for c in conversations)
            or not isinstance(user, str) or not isinstance(claims["iat"], int | float)
        ):
            raise TokenError(expired=False)
        return EndUser(user, tuple(conversations), float(claims["iat"]), float(claims["exp"]))
