"""The resource types kubesim serves, used by discovery, routing and the store."""

from __future__ import annotations

from dataclasses import dataclass

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()  # "status", "scale"
    verbs: tuple[str, ...] = ALL_VERBS
    categories: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """Store key, e.g. ``apps/deployments`` or ``core/configmaps``."""
        return f"{self.group or 'core'}/{self.plural}"

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    def has_status(self) -> bool:
        return "status" in self.subresources


NAMESPACES = ResourceType("", "v1", "Namespace", "namespaces", "namespace", namespaced=False,
                          short_names=("ns",), subresources=("status",),
                          verbs=("create", "delete", "get", "list", "patch", "update", "watch"))
CONFIGMAPS = ResourceType("", "v1", "ConfigMap", "configmaps", "configmap", short_names=("cm",))
SECRETS = ResourceType("", "v1", "Secret", "secrets", "secret")
EVENTS = ResourceType("", "v1", "Event", "events", "event", short_names=("ev",))
PODS = ResourceType("", "v1", "Pod", "pods", "pod", short_names=("po",), subresources=("status", "log"),
                    categories=("all",))
DEPLOYMENTS = ResourceType("apps", "v1", "Deployment", "deployments", "deployment", short_names=("deploy",),
                           subresources=("status", "scale"), categories=("all",))
REPLICASETS = ResourceType("apps", "v1", "ReplicaSet", "replicasets", "replicaset", short_names=("rs",),
                           subresources=("status", "scale"), categories=("all",))
STATEFULSETS = ResourceType("apps", "v1", "StatefulSet", "statefulsets", "statefulset", short_names=("sts",),
                            subresources=("status", "scale"), categories=("all",))
DAEMONSETS = ResourceType("apps", "v1", "DaemonSet", "daemonsets", "daemonset", short_names=("ds",),
                          subresources=("status",), categories=("all",))
CONTROLLERREVISIONS = ResourceType("apps", "v1", "ControllerRevision", "controllerrevisions",
                                   "controllerrevision")
SECRETS = ResourceType("", "v1", "Secret", "secrets", "secret")
HORIZONTALPODAUTOSCALERS = ResourceType("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers",
                                        "horizontalpodautoscaler", short_names=("hpa",), subresources=("status",),
                                        categories=("all",))
# coordination.k8s.io/v1 Lease: what kube-release-rollback takes per workload so two runs never overlap
LEASES = ResourceType("coordination.k8s.io", "v1", "Lease", "leases", "lease")

RESOURCES: tuple[ResourceType, ...] = (
    NAMESPACES, CONFIGMAPS, SECRETS, EVENTS, PODS,
    DEPLOYMENTS, REPLICASETS, STATEFULSETS, DAEMONSETS, CONTROLLERREVISIONS,
    SECRETS, HORIZONTALPODAUTOSCALERS, LEASES,
)

GROUP_VERSIONS: tuple[tuple[str, str], ...] = (("", "v1"), ("apps", "v1"), ("autoscaling", "v2"),
                                               ("coordination.k8s.io", "v1"))


def lookup(group: str, version: str, plural: str) -> ResourceType | None:
    for rt in RESOURCES:
        if rt.group == group and rt.version == version and rt.plural == plural:
            return rt
    return None


def by_kind(kind: str) -> ResourceType | None:
    for rt in RESOURCES:
        if rt.kind == kind:
            return rt
    return None
