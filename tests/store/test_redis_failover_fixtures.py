"""The Cluster and Sentinel helpers of tests/redis_topology.py do what the failover tests rely on: the node
they name owns a key, a killed primary's replica takes over with the replicated data, and nothing they
started outlives them."""

from __future__ import annotations

import os

import pytest
from redis.cluster import ClusterNode as PyClusterNode
from redis.cluster import RedisCluster as PyRedisCluster
from redis.exceptions import MovedError

from tests.redis_topology import running_redis_cluster, running_redis_sentinel

pytestmark = pytest.mark.timeout(60)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_cluster_names_the_owner_and_fails_over() -> None:
    with running_redis_cluster() as cluster:
        pids = [n.pid for n in cluster.nodes]
        assert sorted(n.role for n in cluster.nodes) == ["master"] * 3 + ["slave"] * 3
        assert cluster.url == "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in cluster.nodes[:3])
        client = PyRedisCluster(startup_nodes=[PyClusterNode("127.0.0.1", n.port) for n in cluster.nodes[:3]],
                                decode_responses=True)
        client.set("{conv-1}rec", "v1")
        owner = cluster.primary_for("{conv-1}anything")  # the hash tag decides the slot
        assert owner.client().get("{conv-1}rec") == "v1"
        for other in cluster.nodes:
            if other is not owner and other.role == "master":
                with pytest.raises(MovedError, match=f" 127.0.0.1:{owner.port}$"):
                    other.client().get("{conv-1}rec")
        [replica] = cluster.replicas_of(owner)
        assert owner.client().wait(1, 2000) == 1  # replicated before the kill, so it must survive it
        client.close()
        cluster.kill(owner)
        assert owner.role == "dead"
        assert cluster.wait_promoted(owner, timeout=15) is replica
        assert cluster.primary_for("{conv-1}rec") is replica
        assert replica.client().get("{conv-1}rec") == "v1"
        back = cluster.restart(owner)
        assert back.role == "slave"
        assert cluster.replicas_of(replica) == [back]
    assert all(_gone(pid) for pid in [*pids, back.pid])


def test_sentinel_fails_over_to_a_replica_with_the_other_following_it() -> None:
    with running_redis_sentinel() as setup:
        pids = [n.pid for n in setup.nodes + setup.sentinels]
        primary = setup.primary()
        assert primary is setup.nodes[0]
        assert setup.url == "redis+sentinel://" + ",".join(
            f"127.0.0.1:{s.port}" for s in setup.sentinels) + "/sessionforce"
        primary.client().set("k", "v1")
        assert primary.client().wait(2, 2000) == 2
        assert setup.kill_primary() is primary
        new = setup.wait_failover(timeout=20)
        assert new in setup.nodes[1:]
        assert new.client().get("k") == "v1"
        [other] = [n for n in setup.nodes[1:] if n is not new]
        assert other.role == "slave"
        assert str(other.info("replication")["master_port"]) == str(new.port)
    assert all(_gone(pid) for pid in pids)


def test_everything_stops_when_the_body_fails() -> None:
    pids: list[int] = []

    def interrupted() -> None:
        with running_redis_sentinel() as setup:
            pids.extend(n.pid for n in setup.nodes + setup.sentinels)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert len(pids) == 6
    assert all(_gone(pid) for pid in pids)
