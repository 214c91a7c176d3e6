"""Throwaway Redis Cluster and Sentinel set-ups on loopback, to run the store on and to break on purpose
(plain helpers, like :mod:`tests.redis_server`; no fixtures here).

- :func:`running_redis_cluster`: six ``redis-server --cluster-enabled yes`` (three primaries, one replica
  each) joined by ``redis-cli --cluster create``; ``cluster-node-timeout`` 1000 ms, so a replica takes over
  a killed primary in about 1.5–3 s.
- :func:`running_redis_sentinel`: one primary, two replicas and three sentinels (quorum 2,
  ``down-after-milliseconds`` 1000), so a failover takes about 2–4 s.

Nothing persists data (``save ""``, no AOF); each process runs in a temporary directory and every process
is SIGKILLed when the context exits, whatever made it exit (a failure, KeyboardInterrupt included).
Without the ``redis-server``/``redis-cli`` binaries both skip the test, except under ``CI`` where the
topology tests must run, so they fail::

    with running_redis_cluster() as cluster:
        node = cluster.primary_for("{conv-1}rec")
        cluster.kill(node)
        new_primary = cluster.wait_promoted(node, timeout=10)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
import redis

from tests.redis_server import RedisUnavailable, _free_port

__all__ = ["ClusterNode", "RedisCluster", "RedisSentinel", "running_redis_cluster", "running_redis_sentinel"]

NODE_TIMEOUT_MS = 1000
T = TypeVar("T")


def _binaries() -> tuple[str, str]:
    """The paths of redis-server and redis-cli; skips the test without them (fails under ``CI``)."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        why = "Redis Cluster/Sentinel tests need redis-server and redis-cli (apt-get install redis-server)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return server, cli


def _wait_for(what: str, check: Callable[[], T | None], timeout: float) -> T:
    """Poll ``check`` until it returns something other than ``None``; RedisUnavailable naming ``what`` after
    ``timeout`` seconds. Redis errors while polling count as "not yet" (nodes come and go on purpose here)."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while True:
        try:
            result = check()
        except redis.RedisError as exc:
            result, last_error = None, f" (last error: {type(exc).__name__}: {exc})"
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise RedisUnavailable(f"{what}: not within {timeout:g} s{last_error}")
        time.sleep(0.05)


class ClusterNode:
    """One ``redis-server`` of a set-up: its ``port``, ``pid`` and, asked live, its ``role``."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, workdir: str) -> None:
        self.process = process
        self.port = port
        self.workdir = workdir
        self.node_id = ""  # the cluster node id, filled in once the cluster is formed

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    @property
    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.process.poll() is None

    @property
    def role(self) -> str:
        """``"master"`` or ``"slave"`` as the node itself says (``ROLE``), ``"dead"`` once killed."""
        if not self.alive:
            return "dead"
        return str(self.client().execute_command("ROLE")[0])

    def client(self) -> redis.Redis:
        """A plain (non-cluster) client on this node alone, decoding replies to str."""
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True,
                           socket_connect_timeout=0.5, socket_timeout=2.0)

    def info(self, section: str) -> dict[str, object]:
        """``INFO section`` of this node."""
        return dict(self.client().info(section))

    def kill(self) -> None:
        """SIGKILL (a SIGSTOPped node is continued first so it really dies), and reap it."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGCONT)
            self.process.kill()
        self.process.wait(5)

    def __repr__(self) -> str:
        return f"<node 127.0.0.1:{self.port} pid={self.pid} id={self.node_id[:8]}>"


def _spawn(args: list[str], port: int, workdir: str) -> ClusterNode:
    process = subprocess.Popen(args, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    node = ClusterNode(process, port, workdir)

    def answers() -> bool | None:
        if not node.alive:
            raise RedisUnavailable(f"{args[0]} on port {port} exited at start; see {workdir}/redis.log")
        return True if node.client().ping() else None

    _wait_for(f"redis on port {port} answering PING", answers, 10)
    return node


def _server_args(server: str, port: int, workdir: str) -> list[str]:
    return [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", workdir, "--logfile", os.path.join(workdir, "redis.log"),
            # a replica syncs at once (the default waits 5 s for more replicas to share a diskless sync)
            "--repl-diskless-sync-delay", "0"]


class RedisCluster:
    """A running six-node cluster; see :func:`running_redis_cluster`."""

    def __init__(self, server: str, cli: str, root: str) -> None:
        self._server, self._cli, self._root = server, cli, root
        self.nodes: list[ClusterNode] = []
        self._replicas_at_kill: dict[int, list[ClusterNode]] = {}

    @property
    def url(self) -> str:
        """``redis+cluster://`` with the three nodes that were primaries at start (any subset would do)."""
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[:3])
        return f"redis+cluster://{hosts}"

    def _start_node(self, index: int, port: int | None = None) -> ClusterNode:
        workdir = os.path.join(self._root, f"node{index}")
        os.makedirs(workdir, exist_ok=True)
        port = port or _free_port()
        args = _server_args(self._server, port, workdir)
        args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                 "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--cluster-port", str(_free_port()),
                 # a replica cut off from its primary (as the replication-lag tests do) may still take over
                 "--cluster-replica-validity-factor", "0"]
        return _spawn(args, port, workdir)

    def start(self) -> RedisCluster:
        """Start six nodes, create the cluster (primaries first), wait until every node sees it whole."""
        for index in range(6):
            self.nodes.append(self._start_node(index))
        # redis-cli makes the first three primaries and pairs each with a replica among the last three
        hosts = [f"127.0.0.1:{n.port}" for n in self.nodes]
        subprocess.run([self._cli, "--cluster", "create", *hosts, "--cluster-replicas", "1", "--cluster-yes"],
                       check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=60)
        for node in self.nodes:
            node.node_id = str(node.client().execute_command("CLUSTER MYID"))
        _wait_for("the cluster becoming whole on every node", self._whole, 30)
        return self

    def _whole(self) -> bool | None:
        """Every live node says cluster_state:ok, knows every live node, and every replica's link is up."""
        alive = [n for n in self.nodes if n.alive]
        for node in alive:
            info = node.client().cluster("info")
            if info.get("cluster_state") != "ok" or int(info.get("cluster_known_nodes", 0)) < len(self.nodes):
                return None
            if node.role == "slave" and node.info("replication").get("master_link_status") != "up":
                return None
        return True

    def node(self, port: int) -> ClusterNode:
        """The node listening on ``port``."""
        return next(n for n in self.nodes if n.port == port)

    def _any_live(self) -> ClusterNode:
        return next(n for n in self.nodes if n.alive)

    def primary_for(self, key: str) -> ClusterNode:
        """The node that is now the primary of ``key``'s hash slot (hash tags honoured)."""
        client = self._any_live().client()
        slot = int(client.execute_command("CLUSTER KEYSLOT", key))
        for start, end, primary, *_replicas in client.execute_command("CLUSTER SLOTS"):
            if int(start) <= slot <= int(end):
                return self.node(int(primary[1]))
        raise RedisUnavailable(f"no node serves slot {slot}")

    def replicas_of(self, primary: ClusterNode) -> list[ClusterNode]:
        """The live nodes replicating ``primary`` now."""
        return [node for node in self.nodes
                if node.alive and node is not primary and node.role == "slave"
                and str(node.info("replication").get("master_port")) == str(primary.port)]

    def kill(self, node: ClusterNode, replicas: list[ClusterNode] | None = None) -> None:
        """SIGKILL ``node``, remembering who replicated it for :meth:`wait_promoted` (pass ``replicas`` when
        some of them are stopped and cannot be asked)."""
        self._replicas_at_kill[node.port] = replicas if replicas is not None else (
            self.replicas_of(node) if node.alive else [])
        node.kill()

    def wait_promoted(self, old: ClusterNode, timeout: float = 15) -> ClusterNode:
        """Wait until a replica of ``old`` (killed with :meth:`kill`) serves its slots and every live node
        says cluster_state:ok; returns the new primary."""
        candidates = self._replicas_at_kill.get(old.port)
        if not candidates:
            raise RedisUnavailable(f"{old} had no live replica when killed (kill it with RedisCluster.kill)")

        def promoted() -> ClusterNode | None:
            owners: set[int] = set()
            for node in self.nodes:
                if not node.alive:
                    continue
                client = node.client()
                if client.cluster("info").get("cluster_state") != "ok":
                    return None
                owners.update(int(entry[2][1]) for entry in client.execute_command("CLUSTER SLOTS"))
            return next((n for n in candidates if n.port in owners and n.role == "master"), None)

        return _wait_for(f"a replica of {old} being promoted", promoted, timeout)

    def restart(self, node: ClusterNode) -> ClusterNode:
        """Start a killed node again, empty, on its port with its nodes.conf: it rejoins as a replica of
        whoever took over its slots (so that shard has a replica again, as ``wait_replicas`` needs)."""
        index = self.nodes.index(node)
        fresh = self._start_node(index, node.port)
        fresh.node_id = node.node_id
        self.nodes[index] = fresh
        _wait_for(f"{fresh} rejoining as a replica",
                  lambda: self._whole() if fresh.role == "slave" else None, 30)
        return fresh

    def stop(self) -> None:
        """SIGKILL every node."""
        for node in self.nodes:
            node.kill()


class RedisSentinel:
    """A running primary, two replicas and three sentinels; see :func:`running_redis_sentinel`."""

    def __init__(self, server: str, root: str, service: str) -> None:
        self._server, self._root, self.service = server, root, service
        self.nodes: list[ClusterNode] = []  # the data nodes: the first one is the primary at start
        self.sentinels: list[ClusterNode] = []

    @property
    def url(self) -> str:
        """``redis+sentinel://`` with the three sentinels and the service name."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}"

    def start(self) -> RedisSentinel:
        """Start the primary, its replicas, then the sentinels; wait until every sentinel knows both replicas
        and both other sentinels (without that, a failover could not gather its quorum)."""
        for index in range(3):
            workdir = os.path.join(self._root, f"node{index}")
            os.makedirs(workdir)
            port = _free_port()
            args = _server_args(self._server, port, workdir)
            if self.nodes:
                args += ["--replicaof", "127.0.0.1", str(self.nodes[0].port)]
            self.nodes.append(_spawn(args, port, workdir))
        for index in range(3):
            workdir = os.path.join(self._root, f"sentinel{index}")
            os.makedirs(workdir)
            port = _free_port()
            config = os.path.join(workdir, "sentinel.conf")
            with open(config, "w") as file:  # sentinel rewrites its config file, so it must be its own
                file.write(
                    f"port {port}\nbind 127.0.0.1\ndir {workdir}\nlogfile {workdir}/sentinel.log\n"
                    f"sentinel monitor {self.service} 127.0.0.1 {self.nodes[0].port} 2\n"
                    f"sentinel down-after-milliseconds {self.service} {NODE_TIMEOUT_MS}\n"
                    # a split vote waits 2 x failover-timeout before the next try: keep that short
                    f"sentinel failover-timeout {self.service} 2000\n"
                )
            self.sentinels.append(_spawn([self._server, config, "--sentinel"], port, workdir))
        _wait_for("every sentinel knowing every replica and sentinel", self._acquainted, 30)
        _wait_for("both replicas in sync", lambda: self._in_sync(self.nodes[0], 2), 30)
        return self

    def _acquainted(self) -> bool | None:
        for sentinel in self.sentinels:
            client = sentinel.client()
            replicas = client.execute_command("SENTINEL", "REPLICAS", self.service)
            others = client.execute_command("SENTINEL", "SENTINELS", self.service)
            if len(replicas) < 2 or len(others) < 2:
                return None
        return True

    @staticmethod
    def _in_sync(primary: ClusterNode, replicas: int) -> bool | None:
        info = primary.info("replication")
        online = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)
                  and v.get("state") == "online"]
        return True if info.get("role") == "master" and len(online) >= replicas else None

    def node(self, port: int) -> ClusterNode:
        """The data node listening on ``port``."""
        return next(n for n in self.nodes if n.port == port)

    def primary(self) -> ClusterNode:
        """The data node a live sentinel names as the primary now."""
        sentinel = next(s for s in self.sentinels if s.alive)
        _host, port = sentinel.client().execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
        return self.node(int(port))

    def replicas(self) -> list[ClusterNode]:
        """The live data nodes that are not the primary."""
        primary = self.primary()
        return [n for n in self.nodes if n.alive and n is not primary]

    def kill_primary(self) -> ClusterNode:
        """SIGKILL the primary; returns it."""
        primary = self.primary()
        self._old_primary = primary
        primary.kill()
        return primary

    def wait_failover(self, timeout: float = 20, replicas: int = 1) -> ClusterNode:
        """Wait until every live sentinel names a new, live primary that says it is one and has ``replicas``
        replicas in sync (the other survivor, reconfigured by the sentinels); returns it."""
        old = getattr(self, "_old_primary", None)

        def failed_over() -> ClusterNode | None:
            named = set()
            for sentinel in self.sentinels:
                if sentinel.alive:
                    _host, port = sentinel.client().execute_command(
                        "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
                    named.add(int(port))
            if len(named) != 1:
                return None
            new = self.node(named.pop())
            if new is old or not new.alive or new.role != "master" or not self._in_sync(new, replicas):
                return None
            return new

        return _wait_for(f"the sentinels failing {self.service} over", failed_over, timeout)

    def stop(self) -> None:
        """SIGKILL every sentinel and data node."""
        for node in self.sentinels + self.nodes:
            node.kill()


@contextlib.contextmanager
def running_redis_cluster() -> Iterator[RedisCluster]:
    """A three-primary, three-replica Redis Cluster on loopback, stopped (SIGKILL) on exit, whatever happens.
    Skips the test without the binaries (fails under ``CI``)."""
    server, cli = _binaries()
    with tempfile.TemporaryDirectory(prefix="sessionforce-cluster-") as root:
        cluster = RedisCluster(server, cli, root)
        try:
            yield cluster.start()
        finally:
            cluster.stop()


@contextlib.contextmanager
def running_redis_sentinel(service: str = "sessionforce") -> Iterator[RedisSentinel]:
    """One primary, two replicas and three sentinels watching them as ``service``, on loopback; stopped
    (SIGKILL) on exit, whatever happens. Skips the test without redis-server (fails under ``CI``)."""
    server, _cli = _binaries()
    with tempfile.TemporaryDirectory(prefix="sessionforce-sentinel-") as root:
        sentinel = RedisSentinel(server, root, service)
        try:
            yield sentinel.start()
        finally:
            sentinel.stop()
