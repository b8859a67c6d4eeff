"""Minted tokens expire (EKS after 15 minutes, Azure AD and Google after about an hour) while a run may wait
for a rollout much longer. kubectl re-runs the exec plugin when its credential expires; this re-mints the token
before it expires, on the request that needs it. If re-minting fails, the old token is kept (it may still be
valid for minutes) and a warning says why; the API server's 401 then ends the run in its own words."""

from __future__ import annotations

import threading
from collections.abc import Callable
from time import monotonic
from typing import Any

from .exec_plugins import Aks, AuthPlan, Eks, Gke
from .http import CredentialError

# seconds after which a token is minted anew: well inside each token's lifetime
REFRESH_AFTER: dict[type, float] = {Eks: 10 * 60, Aks: 40 * 60, Gke: 40 * 60}


def refresh_after(plan: AuthPlan) -> float | None:
    """None: the token cannot be minted again (an oidc auth-provider's id-token)."""
    return REFRESH_AFTER.get(type(plan))


class RefreshingToken:
    def __init__(self, token: str, mint: Callable[[], str], every: float,
                 warn: Callable[[str], None], clock: Callable[[], float] | None = None):
        self._token, self._mint, self._every, self._warn = token, mint, every, warn
        self._clock = clock or (lambda: monotonic())  # looked up on each call
        self._minted_at = self._clock()
        self._lock = threading.Lock()

    def current(self) -> str:
        with self._lock:
            if self._clock() - self._minted_at >= self._every:
                try:
                    self._token = self._mint()
                except CredentialError as err:
                    self._warn(f"could not renew the cluster token, going on with the current one: {err.message}")
                self._minted_at = self._clock()  # try again after another interval, not on every request
            return self._token

    def hook(self, configuration: Any) -> None:
        """``kubernetes.client.Configuration.refresh_api_key_hook``: runs before every request's auth header."""
        configuration.api_key["BearerToken"] = f"Bearer {self.current()}"
