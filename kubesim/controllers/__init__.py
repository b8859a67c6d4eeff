"""kubesim's controllers: Deployment, ReplicaSet, StatefulSet, DaemonSet and a simulated kubelet.

``ControllerManager`` runs them level-triggered over the whole store: ``reconcile()`` syncs every object until a
round changes nothing (the server calls it after each write, so a write's consequences are visible when the
response arrives); ``start()`` adds a background thread that reconciles whenever the store changed or simulated
time reached a moment a controller is waiting for (a pod becoming Ready, a progress deadline).
"""

from __future__ import annotations

import logging
import threading

from ..clock import Clock
from ..knobs import Knobs
from ..store import Event, Store
from .daemonset import DaemonSetController
from .deployment import DeploymentController
from .kubelet import Kubelet, Runtime
from .replicaset import ReplicaSetController
from .statefulset import StatefulSetController

__all__ = ["ControllerManager"]

log = logging.getLogger("kubesim.controllers")

TICK_SECONDS = 0.02
MAX_ROUNDS = 200


class ControllerManager:
    """Runs every controller against ``store``; thread-safe, one reconcile at a time."""

    def __init__(self, store: Store, knobs: Knobs, clock: Clock | None = None):
        self.store = store
        self.knobs = knobs
        self.clock = clock or store.clock
        self.rt = Runtime(store=store, knobs=knobs, clock=self.clock, wake_at=self._wake_at)
        self.controllers = (
            Kubelet(self.rt),
            ReplicaSetController(self.rt),
            DeploymentController(self.rt),
            StatefulSetController(self.rt),
            DaemonSetController(self.rt),
        )
        self.errors: list[BaseException] = []  # unexpected controller failures (tests assert it stays empty)
        self._reconcile_lock = threading.RLock()
        self._wake_lock = threading.Lock()
        self._wake: float | None = None
        self._dirty = threading.Event()
        self._dirty.set()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        store.subscribe(self._on_event)

    # -- triggers --------------------------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        """Store subscriber (runs under the store lock): only mark dirty."""
        self._dirty.set()

    def _wake_at(self, when: float) -> None:
        with self._wake_lock:
            if self._wake is None or when < self._wake:
                self._wake = when

    def _due(self) -> bool:
        with self._wake_lock:
            return self._wake is not None and self.clock.now() >= self._wake

    # -- reconciling -----------------------------------------------------------------------------------------

    def reconcile(self, max_rounds: int = MAX_ROUNDS) -> int:
        """Run all controllers until a round changes nothing; returns the number of rounds."""
        with self._reconcile_lock:
            rounds = 0
            while rounds < max_rounds:
                rounds += 1
                self._dirty.clear()
                with self._wake_lock:
                    self._wake = None
                before = self.store.resource_version()
                for controller in self.controllers:
                    try:
                        controller.sync_all()
                    except Exception as exc:  # a controller bug must not take the API server down
                        log.exception("controller %s failed", type(controller).__name__)
                        self.errors.append(exc)
                if self.store.resource_version() == before:
                    break
            else:
                log.warning("controllers did not settle after %d rounds", max_rounds)
                self._dirty.set()
            return rounds

    # -- background thread -----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="kubesim-controllers", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.wait(TICK_SECONDS):
            if self._dirty.is_set() or self._due():
                try:
                    self.reconcile()
                except Exception as exc:  # keep ticking whatever happens
                    log.exception("reconcile failed")
                    self.errors.append(exc)

    def __enter__(self) -> ControllerManager:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
