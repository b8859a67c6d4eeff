"""AKS (Azure AD) access tokens through workload identity federation with GitHub OIDC (standard library).

What ``kubelogin get-token --login workloadidentity`` does, with the GitHub OIDC token as the federated
assertion: request a GitHub OIDC token for audience ``api://AzureADTokenExchange``, then exchange it at
``{AZURE_AUTHORITY_HOST or https://login.microsoftonline.com/}{tenant}/oauth2/v2.0/token`` (OAuth 2.0 client
credentials with ``client_assertion``) for scope ``<server id>/.default``. The app registration (client id)
needs a federated credential for this repository (what ``azure/login`` with OIDC needs too).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from . import http, oidc
from .exec_plugins import Aks

AUDIENCE = "api://AzureADTokenExchange"
DEFAULT_AUTHORITY = "https://login.microsoftonline.com/"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
NATIVE_LOGINS = frozenset({"workloadidentity"})


def token_url(tenant_id: str, authority_host: str | None) -> str:
    base = authority_host or DEFAULT_AUTHORITY
    return f"{base.rstrip('/')}/{tenant_id}/oauth2/v2.0/token"


def ids_for(plan: Aks, client_id_input: str | None, tenant_id_input: str | None,
            environ: Mapping[str, str]) -> tuple[str | None, str | None]:
    """Client and tenant: the inputs, else the kubeconfig's arguments, else ``AZURE_CLIENT_ID``/``AZURE_TENANT_ID``.

    With a login mode other than workload identity, the kubeconfig's ``--client-id`` is the interactive
    application (``az aks get-credentials`` writes the Azure CLI's), which cannot be federated: it is skipped.
    """
    kubeconfig_client = plan.client_id if plan.login in NATIVE_LOGINS else None
    client = client_id_input or kubeconfig_client or environ.get("AZURE_CLIENT_ID") or None
    tenant = tenant_id_input or plan.tenant_id or environ.get("AZURE_TENANT_ID") or None
    return client, tenant


def refusal(plan: Aks, client_id_input: str | None, tenant_id_input: str | None,
            environ: Mapping[str, str]) -> str | None:
    """Why this plan cannot be satisfied here, or None. A login mode other than workload identity
    (``azurecli``: the runner's ``az login`` is not in the container) is satisfied only when the azure-client-id
    input or ``AZURE_CLIENT_ID`` says which app to federate with."""
    client, tenant = ids_for(plan, client_id_input, tenant_id_input, environ)
    setup = ("Use Azure workload identity: give the app registration a federated credential for this "
             "repository, give the job 'permissions: id-token: write', and set the azure-client-id and "
             "azure-tenant-id inputs or AZURE_CLIENT_ID/AZURE_TENANT_ID (or convert the kubeconfig with "
             "'kubelogin convert-kubeconfig -l workloadidentity')")
    if plan.login not in NATIVE_LOGINS and not (client_id_input or environ.get("AZURE_CLIENT_ID")):
        where = ("the runner's 'az login' session lives in its ~/.azure, which is not mounted into the "
                 "container, and the az CLI is not in the image" if plan.login == "azurecli"
                 else "it needs an interactive or host-side login")
        return (f"the kubeconfig runs {plan.command!r} with login mode {plan.login!r}, which cannot work inside "
                f"a container action: {where}. {setup}")
    if not client or not tenant:
        missing = " and ".join(n for n, v in (("azure-client-id", client), ("azure-tenant-id", tenant)) if not v)
        return (f"the kubeconfig runs {plan.command!r} (AKS, workload identity) but {missing} is not known: set "
                f"the input, or AZURE_CLIENT_ID/AZURE_TENANT_ID. {setup}")
    return None


def bearer_token(plan: Aks, client_id_input: str | None, tenant_id_input: str | None,
                 environ: Mapping[str, str], on_secret: Callable[[str], None]) -> tuple[str, str]:
    why_not = refusal(plan, client_id_input, tenant_id_input, environ)
    if why_not:
        raise http.CredentialError("azure-client-id", why_not)
    client, tenant = ids_for(plan, client_id_input, tenant_id_input, environ)
    assert client and tenant  # refusal() checked both
    assertion = oidc.request_token(environ, AUDIENCE, "azure-client-id", on_secret)
    authority = plan.authority_host or environ.get("AZURE_AUTHORITY_HOST")
    answer = http.post_form(token_url(tenant, authority), {
        "client_id": client, "scope": f"{plan.server_id}/.default", "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion,
    }, "the Azure AD token exchange", "azure-client-id")
    access = http.json_object(answer, "the Azure AD token exchange", "azure-client-id").get("access_token")
    if not isinstance(access, str) or not access:
        raise http.CredentialError("azure-client-id", "the Azure AD token exchange answered without access_token")
    on_secret(access)
    return access, f"Azure AD token for AKS (workload identity, client {client})"
