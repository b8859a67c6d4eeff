"""``propagationPolicy: Orphan`` on DELETE: the owner goes, its dependents stay without the ownerReference
(the garbage collector's orphaning), as ``kubectl delete --cascade=orphan`` expects of a real API server."""

from __future__ import annotations

from conftest import kubectl
from helpers import make_deployment, replica_sets

import kubesim
from kubesim.resources import DEPLOYMENTS, PODS, REPLICASETS


def _owners(obj: dict) -> list[str]:  # type: ignore[type-arg]
    return [ref["uid"] for ref in obj["metadata"].get("ownerReferences") or []]


def test_kubectl_delete_cascade_orphan_keeps_the_replica_sets(sim: kubesim.Sim) -> None:
    make_deployment(sim, "web", replicas=2)
    uid = sim.store.get(DEPLOYMENTS, "default", "web")["metadata"]["uid"]
    (rs,) = sim.wait_until(lambda: replica_sets(sim))
    pods = sim.wait_until(lambda: list(sim.store.list(PODS, "default")[0]) or None)
    kubectl(sim, "delete", "deployment", "web", "--cascade=orphan", check=True)
    assert sim.store.find(DEPLOYMENTS, "default", "web") is None
    kept = sim.store.get(REPLICASETS, "default", rs["metadata"]["name"])
    assert uid not in _owners(kept)
    assert int(kept["metadata"]["resourceVersion"]) > int(rs["metadata"]["resourceVersion"])  # an update, as upstream
    names = {p["metadata"]["name"] for p in sim.store.list(PODS, "default")[0]}
    assert names >= {p["metadata"]["name"] for p in pods}  # the ReplicaSet keeps its pods


def test_background_delete_still_collects_the_dependents(sim: kubesim.Sim) -> None:
    make_deployment(sim, "web")
    (rs,) = sim.wait_until(lambda: replica_sets(sim))
    kubectl(sim, "delete", "deployment", "web", "--cascade=background", check=True)
    assert sim.store.find(REPLICASETS, "default", rs["metadata"]["name"]) is None
