"""kube-release-rollback: deploy and roll back Kubernetes workloads by release name.

A release is recorded on every revision as the ``kubernetes.io/change-cause`` annotation; rolling back to a
release means undoing to the newest revision that carries it. See ``docs/design.md`` for the module layout.
"""

__version__ = "0.1.0"
