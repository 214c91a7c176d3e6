"""From a store URL to a redis-py client: one Redis, a Redis Cluster, or a primary found through Sentinel.

URL forms (``rediss`` for TLS everywhere; our own query parameters are :data:`OWN_OPTIONS`)::

    redis://[[user]:password@]host:6379/0[?...]                     one primary (redis-py parses the rest)
    unix:///path/to/redis.sock[?db=0]
    redis+cluster://[[user]:password@]host1:6379,host2:6379[/][?...]  a cluster: any of its nodes, comma-separated
    redis+sentinel://[[user]:password@]s1:26379,s2:26379/service[/db][?...]  the primary Sentinel names ``service``

redis-py documents no URL for a cluster of several seed nodes or for Sentinel, so these forms are ours
(the ``redis+cluster`` / ``redis+sentinel`` scheme names follow other clients that use them). A cluster
or Sentinel URL takes a few of redis-py's connection options in its query (:data:`_PASSED`); anything
else is refused by name, with what to write instead. No message ever shows the password.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from sessionforce.errors import ConfigError
from sessionforce.errors._redact import redact_url

__all__ = ["OWN_OPTIONS", "Connected", "Options", "connect", "describe", "retry_policy"]

OWN_OPTIONS = ("prefix", "wait_replicas", "wait_timeout", "pool_max", "pool_timeout")

_CLUSTER_EXAMPLE = "redis+cluster://[:password@]host1:6379,host2:6379 (rediss+cluster:// for TLS)"
_SENTINEL_EXAMPLE = "redis+sentinel://[:password@]sentinel1:26379,sentinel2:26379/mymaster[/0]"
_SINGLE_EXAMPLE = "redis://[:password@]host:6379/0"

_PASSED: dict[str, Callable[[str], Any]] = {
    "socket_timeout": float,
    "socket_connect_timeout": float,
    "ssl_cert_reqs": str,
    "ssl_ca_certs": str,
    "ssl_certfile": str,
    "ssl_keyfile": str,
    "ssl_check_hostname": lambda v: v.lower() in ("1", "true", "yes", "on"),
    "sentinel_password": str,
    "sentinel_username": str,
}
"""redis-py options a cluster or Sentinel URL may carry in its query, with their types."""


@dataclass(frozen=True, slots=True)
class Options:
    """Our own options, from the URL's query or keyword arguments (keyword arguments win)."""

    prefix: str = "sessionforce:"
    wait_replicas: int = 0
    wait_timeout: float = 1.0
    pool_max: int = 50
    pool_timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class Connected:
    """A client for a store URL, with the options the URL carried."""

    client: Any
    options: Options
    topology: str  # "single", "cluster" or "sentinel"


def retry_policy() -> Retry:
    """Resend a command whose connection broke up to three times (every store script is harmless twice)."""
    return Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.25), 3)


def describe(client: Any) -> str:
    """Where ``client`` points, never with a password."""
    if isinstance(client, RedisCluster):
        seeds = ",".join(f"[{n.host}]:{n.port}" if ":" in n.host else f"{n.host}:{n.port}"
                         for n in client.nodes_manager.startup_nodes.values())
        tls = "SSL" in getattr(client.connection_kwargs.get("connection_class"), "__name__", "")
        return f"{'rediss' if tls else 'redis'}+cluster://{seeds}"
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    tls = "SSL" in pool.connection_class.__name__
    service = getattr(pool, "service_name", None)
    if service is not None:
        sentinels = ",".join(
            f"{s.connection_pool.connection_kwargs.get('host')}:{s.connection_pool.connection_kwargs.get('port')}"
            for s in pool.sentinel_manager.sentinels
        )
        return f"{'rediss' if tls else 'redis'}+sentinel://{sentinels}/{service}/{kwargs.get('db', 0)}"
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}"
    where = f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
    return f"{'rediss' if tls else 'redis'}://{where}"


def _bad(url: str, why: str, example: str) -> ConfigError:
    return ConfigError(f"Store URL {redact_url(url)!r} {why}. What to do: use {example}.")


def _number(url: str, name: str, value: str, kind: type[int] | type[float], minimum: float) -> Any:
    try:
        number = kind(value)
    except ValueError:
        number = None
    if number is None or number < minimum:
        what = "a whole number" if kind is int else "a number of seconds"
        raise _bad(url, f"has {name}={value!r}", f"{name}=<{what}, at least {minimum:g}>")
    return number


def _options(url: str, query: list[tuple[str, str]], given: dict[str, Any]) -> Options:
    own = {k: v for k, v in query if k in OWN_OPTIONS}
    values: dict[str, Any] = {}
    if "prefix" in own:
        values["prefix"] = own["prefix"]
    if "wait_replicas" in own:
        values["wait_replicas"] = _number(url, "wait_replicas", own["wait_replicas"], int, 0)
    for name, minimum in (("wait_timeout", 0.001), ("pool_timeout", 0.0)):
        if name in own:
            values[name] = _number(url, name, own[name], float, minimum)
    if "pool_max" in own:
        values["pool_max"] = _number(url, "pool_max", own["pool_max"], int, 1)
    values.update({k: v for k, v in given.items() if v is not None})
    return Options(**values)


def _hosts(url: str, netloc: str, default_port: int, example: str) -> list[tuple[str, int]]:
    hosts: list[tuple[str, int]] = []
    for each in netloc.split(","):
        if each.startswith("["):
            host, sep, rest = each[1:].partition("]")
            if not sep:
                raise _bad(url, f"has an IPv6 host without its closing bracket ({each!r})", example)
        else:
            host, _, rest = each.partition(":")
            rest = f":{rest}" if _ else ""
        if not host:
            raise _bad(url, "names an empty host", example)
        port = default_port
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit() or not 0 < int(rest[1:]) < 65536:
                raise _bad(url, f"has a bad port in {each!r}", example)
            port = int(rest[1:])
        hosts.append((host, port))
    return hosts


def connect(url: str, given: dict[str, Any], client_kwargs: dict[str, Any]) -> Connected:
    """A (not yet connected) client for ``url``; ``given`` are our options passed as keyword arguments,
    ``client_kwargs`` go to redis-py. Raises :class:`ConfigError` for a URL that cannot be used."""
    scheme = url.partition("://")[0].lower()
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise _bad(url, f"is not a valid Redis URL ({exc})", _SINGLE_EXAMPLE) from None
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = _options(url, query, given)
    client_kwargs.setdefault("retry", retry_policy())
    client_kwargs.setdefault("max_connections", options.pool_max + 1)  # + the pub/sub connection
    if scheme not in ("redis+cluster", "rediss+cluster", "redis+sentinel", "rediss+sentinel"):
        db = parts.path.strip("/") if scheme in ("redis", "rediss") else ""
        if db and not db.isdigit():  # redis-py would quietly use database 0
            raise _bad(url, f"names the database {db!r}, which is not a number", _SINGLE_EXAMPLE)
        rest = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k not in OWN_OPTIONS])))
        client_kwargs.setdefault("retry_on_error", [RedisConnectionError])
        try:
            return Connected(aioredis.Redis.from_url(rest, **client_kwargs), options, "single")
        except ValueError as exc:
            raise _bad(url, f"is not a valid Redis URL ({exc})", f"{_SINGLE_EXAMPLE}, {_CLUSTER_EXAMPLE} or "
                       f"{_SENTINEL_EXAMPLE}") from None
    cluster = scheme.endswith("cluster")
    example = _CLUSTER_EXAMPLE if cluster else _SENTINEL_EXAMPLE
    extra: dict[str, Any] = {}
    for name, value in query:
        if name in OWN_OPTIONS:
            continue
        if name not in _PASSED:
            allowed = ", ".join([*OWN_OPTIONS, *_PASSED])
            raise _bad(url, f"has an option {name!r} the store does not know", f"one of {allowed}")
        try:
            extra[name] = _PASSED[name](value)
        except ValueError:
            raise _bad(url, f"has {name}={value!r}", f"{name}=<a number of seconds>") from None
    userinfo, _, netloc = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    auth: dict[str, Any] = {"username": unquote(user) or None, "password": unquote(password) or None}
    hosts = _hosts(url, netloc, 6379 if cluster else 26379, example)
    tls = scheme.startswith("rediss")
    if cluster:
        if "{" in options.prefix or "}" in options.prefix:
            raise _bad(url, "has a prefix with braces; in a cluster the store names hash slots with {...} itself",
                       "a prefix without { or }")
        if parts.path not in ("", "/", "/0"):
            raise _bad(url, "names a database; a Redis Cluster has only database 0", _CLUSTER_EXAMPLE)
        client = RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in hosts], ssl=tls, **auth, **extra, **client_kwargs
        )
        return Connected(client, options, "cluster")
    service, _, db = parts.path.strip("/").partition("/")
    if not service or (db and not db.isdigit()) or "/" in db:
        raise _bad(url, "needs the name Sentinel knows the primary by (and optionally a database number)",
                   _SENTINEL_EXAMPLE)
    timeouts = ("socket_timeout", "socket_connect_timeout")
    sentinel_kwargs: dict[str, Any] = {k: extra.pop(k) for k in timeouts if k in extra}
    sentinel_kwargs["password"] = extra.pop("sentinel_password", None)
    sentinel_kwargs["username"] = extra.pop("sentinel_username", None)
    if tls:
        sentinel_kwargs.update(ssl=True, **{k: v for k, v in extra.items() if k.startswith("ssl_")})
    client_kwargs.setdefault("retry_on_error", [RedisConnectionError])
    manager = Sentinel(hosts, sentinel_kwargs=sentinel_kwargs, ssl=tls, **auth, **extra)
    for name in timeouts:
        if name in sentinel_kwargs:
            client_kwargs.setdefault(name, sentinel_kwargs[name])
    client = manager.master_for(unquote(service), db=int(db or 0), **client_kwargs)
    return Connected(client, options, "sentinel")
