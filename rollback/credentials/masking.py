"""Every credential value inside a parsed kubeconfig, found by walking its structure (never by line patterns).

Line patterns miss flow-style YAML (``user: {token: X}``), read the ``>-`` of a folded scalar as the value, and
know nothing of OIDC ``id-token``/``refresh-token``/``client-secret`` or of exec ``env`` values. Walking the
parsed document sees each value exactly as the client will send it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

# keys of users[].user whose value is a credential (client-go's AuthInfo fields)
USER_SECRET_KEYS = frozenset({"token", "password", "client-key-data", "client-certificate-data"})
# keys inside auth-provider.config (oidc, azure, gcp) that hold a credential
_SECRETISH = re.compile(r"token|secret|password|key", re.IGNORECASE)
# exec args that carry a secret in the next argument (``--client-secret X``) or after '=' (``--token=X``)
_SECRET_FLAG = re.compile(r"^--?[\w-]*(secret|token|password)[\w-]*$", re.IGNORECASE)
_PATH_FLAG = re.compile(r"(dir|file|path|cache)$", re.IGNORECASE)  # --token-cache-dir names a path, not a secret


def credential_values(kubeconfig: Mapping[str, Any]) -> tuple[str, ...]:
    """The values to mask, each once, longest first (so a value that contains another is masked whole)."""
    found = dict.fromkeys(value for value in _walk_users(kubeconfig) if value.strip())
    return tuple(sorted(found, key=len, reverse=True))


def _walk_users(kubeconfig: Mapping[str, Any]) -> Iterator[str]:
    users = kubeconfig.get("users") if isinstance(kubeconfig, Mapping) else None
    for entry in users if isinstance(users, list) else []:
        user = entry.get("user") if isinstance(entry, Mapping) else None
        if not isinstance(user, Mapping):
            continue
        for key, value in user.items():
            if key in USER_SECRET_KEYS:
                yield from _strings(value)
        provider = user.get("auth-provider")
        config = provider.get("config") if isinstance(provider, Mapping) else None
        if isinstance(config, Mapping):
            for key, value in config.items():
                if _SECRETISH.search(str(key)):
                    yield from _strings(value)
        exec_ = user.get("exec")
        if isinstance(exec_, Mapping):
            yield from _exec_secrets(exec_)


# exec env names that select configuration, never a credential: `aws eks update-kubeconfig --profile prod`
# writes AWS_PROFILE=prod, and masking "prod" or "default" would hide those words everywhere in the log
NOT_SECRET_ENV = frozenset({"AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_STS_REGIONAL_ENDPOINTS",
                            "KUBERNETES_EXEC_INFO"})


def _exec_secrets(exec_: Mapping[str, Any]) -> Iterator[str]:
    env = exec_.get("env")
    for item in env if isinstance(env, list) else []:
        if isinstance(item, Mapping) and str(item.get("name")) not in NOT_SECRET_ENV:
            yield from _strings(item.get("value"))
    args = exec_.get("args")
    args = [str(a) for a in args] if isinstance(args, list) else []
    for index, arg in enumerate(args):
        flag, equals, inline = arg.partition("=")
        if not _SECRET_FLAG.match(flag) or _PATH_FLAG.search(flag):
            continue
        if equals:
            yield inline
        elif index + 1 < len(args):
            yield args[index + 1]


def _strings(value: Any) -> Iterator[str]:
    """Scalars only: a number or a boolean a user typed as a token is still sent as its text."""
    if isinstance(value, str):
        yield value.strip()
    elif isinstance(value, bool | int | float):
        yield str(value)
