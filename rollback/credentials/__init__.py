"""Credentials for the clusters users really have, minted inside the container (called only from
``rollback.cluster``): one module per cloud, ``exec_plugins`` to decide which one a kubeconfig needs,
``masking`` to find every secret in a kubeconfig."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from . import aks, eks, gke
from .exec_plugins import Aks, AuthPlan, Eks, Gke, OidcIdToken
from .http import CredentialError

__all__ = ["CloudOptions", "CredentialError", "bearer_token", "unused_options"]


@dataclass(frozen=True)
class CloudOptions:
    """The inputs that steer the native cloud paths."""

    aws_role_arn: str | None = None
    azure_client_id: str | None = None
    azure_tenant_id: str | None = None


def bearer_token(plan: AuthPlan, options: CloudOptions, environ: Mapping[str, str],
                 on_secret: Callable[[str], None], now: datetime.datetime | None = None) -> tuple[str, str] | None:
    """(token, description safe to print) for a plan that needs one minted, None for a static one.
    ``on_secret`` is told every credential (including the minted token) before this returns."""
    if isinstance(plan, Eks):
        return eks.bearer_token(plan, options.aws_role_arn, environ, now or datetime.datetime.now(datetime.UTC),
                                on_secret)
    if isinstance(plan, Aks):
        return aks.bearer_token(plan, options.azure_client_id, options.azure_tenant_id, environ, on_secret)
    if isinstance(plan, Gke):
        return gke.bearer_token(plan, environ, on_secret, now or datetime.datetime.now(datetime.UTC))
    if isinstance(plan, OidcIdToken):
        on_secret(plan.id_token)
        return plan.id_token, "the id-token of the kubeconfig's oidc auth-provider"
    return None


def unused_options(plan: AuthPlan | None, options: CloudOptions) -> list[str]:
    """Warnings for cloud inputs the kubeconfig does not use (``plan`` None: no kubeconfig at all), so a
    user who set one is not left believing it took effect."""
    warnings = []
    if options.aws_role_arn and not isinstance(plan, Eks):
        warnings.append("aws-role-arn is set, but the cluster credentials in use do not run 'aws eks "
                        "get-token' or 'aws-iam-authenticator': it is not used")
    for name, value in (("azure-client-id", options.azure_client_id), ("azure-tenant-id", options.azure_tenant_id)):
        if value and not isinstance(plan, Aks):
            warnings.append(f"{name} is set, but the cluster credentials in use do not run 'kubelogin "
                            f"get-token': it is not used")
    return warnings
