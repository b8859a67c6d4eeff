"""Which credential a kubeconfig user needs, decided from its ``exec`` / ``auth-provider`` entry (no I/O).

A container action cannot run exec plugins: the binaries are not in the image, and the runner does not mount
its tool cache, ``~/.aws``, ``~/.azure`` or ``~/.config/gcloud`` into the container. So the plugins the clouds
write are recognised and satisfied natively (``eks``, ``aks``, ``gke``), and every other one is refused before
any request, with the options a user has. No plugin is ever run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

AKS_SERVER_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"  # the AKS AAD server application, same in every tenant


@dataclass(frozen=True)
class Static:
    """Token, client certificate, basic auth or nothing: the Kubernetes client uses it as it is."""


@dataclass(frozen=True)
class Eks:
    """``aws eks get-token`` or ``aws-iam-authenticator token``: a presigned STS GetCallerIdentity URL."""

    command: str
    cluster_name: str
    region: str | None = None
    role_arn: str | None = None


@dataclass(frozen=True)
class Aks:
    """``kubelogin get-token``: an Azure AD access token for the AKS server application."""

    command: str
    server_id: str = AKS_SERVER_ID
    login: str = "devicecode"  # kubelogin's default login mode
    client_id: str | None = None
    tenant_id: str | None = None
    authority_host: str | None = None


@dataclass(frozen=True)
class Gke:
    """``gke-gcloud-auth-plugin`` or ``auth-provider: gcp``: a Google access token."""

    command: str


@dataclass(frozen=True)
class OidcIdToken:
    """``auth-provider: oidc``: client-go sends its ``id-token`` as the bearer token (no refresh here)."""

    id_token: str


@dataclass(frozen=True)
class Unsupported:
    """A plugin or provider this action cannot satisfy; ``why`` says what it would need."""

    command: str
    why: str


AuthPlan = Static | Eks | Aks | Gke | OidcIdToken | Unsupported


def classify(user: Mapping[str, Any]) -> AuthPlan:
    """The plan for one ``users[].user`` mapping."""
    exec_ = user.get("exec")
    if isinstance(exec_, Mapping):
        command = str(exec_.get("command") or "")
        args = [str(a) for a in exec_.get("args") or []] if isinstance(exec_.get("args"), list) else []
        return _classify_exec(command, args)
    provider = user.get("auth-provider")
    if isinstance(provider, Mapping):
        return _classify_provider(provider)
    return Static()


def _program(command: str) -> str:
    name = os.path.basename(command.replace("\\", "/"))
    return name[:-4] if name.lower().endswith(".exe") else name


def _classify_exec(command: str, args: Sequence[str]) -> AuthPlan:
    program = _program(command)
    shown = _shown(command, args)
    if program == "aws":
        if "eks" in args and "get-token" in args:
            name = _flag(args, "--cluster-name") or _flag(args, "--cluster-id")
            if name:
                return Eks(shown, name, _flag(args, "--region"), _flag(args, "--role-arn"))
            return Unsupported(shown, "it names no --cluster-name, so the token cannot be minted for it")
        return Unsupported(shown, "only 'aws eks get-token' is understood")
    if program == "aws-iam-authenticator":
        if args[:1] == ["token"]:
            name = _flag(args, "-i") or _flag(args, "--cluster-id")
            if name:
                return Eks(shown, name, _flag(args, "--region"), _flag(args, "-r") or _flag(args, "--role"))
            return Unsupported(shown, "it names no cluster (-i), so the token cannot be minted for it")
        return Unsupported(shown, "only 'aws-iam-authenticator token -i CLUSTER' is understood")
    if program == "kubelogin":
        if args[:1] == ["get-token"]:
            return Aks(shown, server_id=_flag(args, "--server-id") or AKS_SERVER_ID,
                       login=_flag(args, "--login") or _flag(args, "-l") or "devicecode",
                       client_id=_flag(args, "--client-id"), tenant_id=_flag(args, "--tenant-id"),
                       authority_host=_flag(args, "--authority-host"))
        return Unsupported(shown, "only 'kubelogin get-token' is understood")
    if program == "gke-gcloud-auth-plugin":
        return Gke(shown)
    return Unsupported(shown, "it is not one of the cloud plugins this action can stand in for")


def _shown(command: str, args: Sequence[str]) -> str:
    """The command and its subcommands (``aws eks get-token``) for messages: flags and their values are
    left out, since one of them may be a secret."""
    words, skip = [command], False
    for arg in args:
        if skip:
            skip = False
        elif arg.startswith("-"):
            skip = "=" not in arg
        elif len(words) < 4:
            words.append(arg)
    return " ".join(words).strip() or "(empty command)"


def _classify_provider(provider: Mapping[str, Any]) -> AuthPlan:
    name = str(provider.get("name") or "")
    config = provider.get("config") if isinstance(provider.get("config"), Mapping) else {}
    shown = f"auth-provider {name or '(unnamed)'}"
    if name == "gcp":
        return Gke(shown)
    if name == "oidc":
        token = str((config or {}).get("id-token") or "").strip()
        if token:
            return OidcIdToken(token)
        return Unsupported(shown, "it has no id-token, and logging in to the identity provider needs a browser")
    if name == "azure":
        return Unsupported(shown, "client-go removed the azure auth-provider in Kubernetes 1.26; convert the "
                                  "kubeconfig with 'kubelogin convert-kubeconfig -l workloadidentity'")
    return Unsupported(shown, "client-go has no such auth-provider")


def _flag(args: Sequence[str], name: str) -> str | None:
    """The value of ``name VALUE`` or ``name=VALUE`` (the last one wins, as with Go's flag packages)."""
    value = None
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            value = args[index + 1]
        elif arg.startswith(name + "="):
            value = arg[len(name) + 1:]
    return value or None


def unsupported_message(user_name: str, plan: Unsupported) -> str:
    """The error for a plugin this action will not run, with what to do instead."""
    return (
        f"the kubeconfig user {user_name!r} gets its credentials by running {plan.command!r} "
        f"({plan.why}). A container action cannot run credential plugins: the binary is not in the image, "
        f"and the runner does not mount its tool cache, ~/.aws, ~/.azure or ~/.config/gcloud into the "
        f"container; this action never runs them, so no request was sent. Options: for EKS ('aws eks "
        f"get-token', 'aws-iam-authenticator token'), AKS ('kubelogin get-token -l workloadidentity') and GKE "
        f"('gke-gcloud-auth-plugin') the action mints the token itself (README, 'Connect to your cluster'); "
        f"or get a token in an earlier step and pass the server and token inputs; or use a kubeconfig with a "
        f"service-account token"
    )
