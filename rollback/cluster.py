"""Connecting to the cluster the way real users do.

Order of precedence: the ``kubeconfig`` input (content), the ``server`` + ``token`` inputs, the ``KUBECONFIG``
environment variable (one path or a ``:``-separated list), the in-cluster service account, ``~/.kube/config``.
Nothing here prints credentials; the caller masks them before anything is logged.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import urllib3
import yaml

from . import transport

REQUEST_TIMEOUT = 30.0  # seconds, for every non-watch API request
PARTIAL_METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"  # Accept: metadata only
UNREACHABLE = 0  # ApiFailure.status when the API server gave no answer at all


class ClusterConfigError(Exception):
    """The credentials could not be turned into a client. ``input_name`` names the input to fix."""

    def __init__(self, input_name: str, message: str):
        super().__init__(message)
        self.input_name = input_name
        self.message = message


@dataclass(frozen=True)
class Credentials:
    kubeconfig: str | None = None  # kubeconfig content (already decoded from base64)
    context: str | None = None
    server: str | None = None
    token: str | None = None
    certificate_authority_data: str | None = None  # base64 PEM, as in a kubeconfig
    insecure_skip_tls_verify: bool = False


@dataclass(frozen=True)
class Connection:
    api_client: Any  # kubernetes.client.ApiClient
    source: str  # where the credentials came from, safe to print
    server: str  # API server URL, safe to print


def connect(credentials: Credentials, environ: Mapping[str, str] | None = None) -> Connection:
    """Build an ``ApiClient``. Raises ``ClusterConfigError`` naming the input (or variable) to fix."""
    from kubernetes import client, config  # lazy: keeps `--help` and input errors fast

    env = os.environ if environ is None else environ
    if credentials.kubeconfig:
        return _from_kubeconfig_content(credentials.kubeconfig, credentials.context)
    if credentials.server:
        return _from_server_token(credentials)
    if env.get("KUBECONFIG"):
        return _from_kubeconfig_files(env["KUBECONFIG"], credentials.context, "KUBECONFIG")
    if env.get("KUBERNETES_SERVICE_HOST"):
        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException as err:
            raise ClusterConfigError("kubeconfig", f"in-cluster configuration failed: {err}. Set the kubeconfig "
                                                   f"input or mount a service account token.") from err
        return Connection(client.ApiClient(configuration), "in-cluster service account", configuration.host)
    home_config = os.path.join(env.get("HOME", os.path.expanduser("~")), ".kube", "config")
    if os.path.isfile(home_config):
        return _from_kubeconfig_files(home_config, credentials.context, "~/.kube/config")
    raise ClusterConfigError(
        "kubeconfig",
        "no cluster credentials found: set the kubeconfig input (kubeconfig file content, plain or base64), "
        "or the server and token inputs, or the KUBECONFIG environment variable (a path inside the workspace "
        "or RUNNER_TEMP: a container action cannot see the runner's ~/.kube/config)",
    )


def decode_kubeconfig(text: str) -> dict[str, Any]:
    """Kubeconfig content as a mapping; accepts plain YAML/JSON or base64 of it."""
    candidates = [text]
    try:
        candidates.append(base64.b64decode("".join(text.split()), validate=True).decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        pass
    for candidate in candidates:
        try:
            loaded = yaml.safe_load(candidate)
        except yaml.YAMLError:
            continue
        if isinstance(loaded, dict) and loaded.get("clusters"):
            return loaded
    raise ClusterConfigError("kubeconfig", "the kubeconfig input is neither a kubeconfig (YAML with a 'clusters' "
                                           "list) nor base64 of one")


def _from_kubeconfig_content(text: str, context: str | None) -> Connection:
    from kubernetes import client, config

    loaded = decode_kubeconfig(text)
    _check_context(loaded, context, "kubeconfig input")
    configuration = client.Configuration()
    try:
        # temp_file_path keeps certificate files out of the workspace
        config.load_kube_config_from_dict(loaded, context=context, client_configuration=configuration,
                                          persist_config=False, temp_file_path=tempfile.gettempdir())
    except (config.ConfigException, KeyError, TypeError, ValueError) as err:
        raise ClusterConfigError("kubeconfig", f"the kubeconfig input cannot be used: {err}") from err
    return Connection(client.ApiClient(configuration), _describe("kubeconfig input", context), configuration.host)


def _from_kubeconfig_files(paths: str, context: str | None, source: str) -> Connection:
    from kubernetes import client, config

    files = [p for p in paths.split(os.pathsep) if p]
    readable = [p for p in files if os.path.isfile(p)]
    if not readable:
        raise ClusterConfigError("kubeconfig", f"{source} points at {len(files)} path(s), none of which is a "
                                               f"readable file; a container action only sees files in the "
                                               f"workspace or RUNNER_TEMP")
    if len(readable) == 1:
        try:
            with open(readable[0], encoding="utf-8") as handle:
                _check_context(yaml.safe_load(handle) or {}, context, source)
        except (OSError, yaml.YAMLError) as err:
            raise ClusterConfigError("kubeconfig", f"{source} could not be read: {err.__class__.__name__}") from err
    configuration = client.Configuration()
    try:
        config.load_kube_config(config_file=os.pathsep.join(readable), context=context,
                                client_configuration=configuration, persist_config=False)
    except (config.ConfigException, KeyError, TypeError, ValueError) as err:
        raise ClusterConfigError("kubeconfig", f"{source} cannot be used: {err}") from err
    return Connection(client.ApiClient(configuration), _describe(source, context), configuration.host)


def _from_server_token(credentials: Credentials) -> Connection:
    from kubernetes import client

    if not credentials.token:
        raise ClusterConfigError("token", "the server input needs the token input (a bearer token, e.g. a "
                                          "service account token)")
    configuration = client.Configuration()
    configuration.host = credentials.server.rstrip("/") if credentials.server else ""
    configuration.api_key = {"authorization": credentials.token}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    if credentials.insecure_skip_tls_verify:
        configuration.verify_ssl = False
    elif credentials.certificate_authority_data:
        try:
            pem = base64.b64decode("".join(credentials.certificate_authority_data.split()), validate=True)
        except ValueError as err:
            raise ClusterConfigError("certificate-authority-data", "certificate-authority-data must be base64 of "
                                                                   "a PEM certificate") from err
        handle = tempfile.NamedTemporaryFile("wb", suffix=".crt", delete=False)
        with handle:
            handle.write(pem)
        configuration.ssl_ca_cert = handle.name
    return Connection(client.ApiClient(configuration), "server and token inputs", configuration.host)


def _check_context(loaded: Mapping[str, Any], context: str | None, source: str) -> None:
    if not context:
        return
    names = [c.get("name") for c in loaded.get("contexts") or [] if isinstance(c, dict)]
    if context not in names:
        listed = ", ".join(str(n) for n in names) or "none"
        raise ClusterConfigError("context", f"context {context!r} is not in the {source}; it has: {listed}")


def _describe(source: str, context: str | None) -> str:
    return f"{source} (context {context})" if context else source


class ApiFailure(Exception):
    """A non-2xx answer from the API server, with the fields of its ``Status`` body.

    ``causes`` are the messages of ``details.causes``: for a 422 the generic message only says "the server
    rejected our request due to an error in our request", and the cause says what, e.g. that a JSON-patch
    ``test`` op failed.
    """

    def __init__(self, status: int, reason: str, message: str, causes: tuple[str, ...] = ()):
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.causes = causes

    @classmethod
    def from_exception(cls, err: Any) -> ApiFailure:
        body = getattr(err, "body", None)
        if body is None and getattr(err, "data", None) is not None:
            body = err.data
        reason, message = str(getattr(err, "reason", "") or ""), str(err)
        causes: tuple[str, ...] = ()
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        if isinstance(body, str):
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                reason = str(parsed.get("reason") or reason)
                message = str(parsed.get("message") or message)
                details = parsed.get("details")
                listed = details.get("causes") if isinstance(details, dict) else None
                if isinstance(listed, list):
                    causes = tuple(str(c.get("message")) for c in listed if isinstance(c, dict) and c.get("message"))
        return cls(int(getattr(err, "status", 0) or 0), reason, message, causes)

    @property
    def is_conflict(self) -> bool:
        return self.status == 409

    @property
    def is_not_found(self) -> bool:
        return self.status == 404


def resource_path(group: str, namespace: str, plural: str, name: str | None = None) -> str:
    """``/apis/apps/v1/namespaces/NS/deployments[/NAME]`` (``group`` "apps") or ``/api/v1/...`` (group "")."""
    base = f"/apis/{group}/v1" if group else "/api/v1"
    path = f"{base}/namespaces/{quote(namespace, safe='')}/{plural}"
    return f"{path}/{quote(name, safe='')}" if name is not None else path


class AnswerLost(ApiFailure):
    """A write was sent but its answer never came (connection reset, read timeout) or was a 5xx: the API
    server may or may not have applied it. The write's owner re-reads the object and decides from what is
    there (``rollback.verify``); it is never sent again blindly."""


class DeadlineExceeded(ApiFailure):
    """The ``timeout`` input ran out: the request was not sent (or its answer did not come in time)."""

    def __init__(self, message: str):
        super().__init__(UNREACHABLE, "Timeout", message)


FINISH_RESERVE = 1.0  # seconds after the run's own work, at most, for reading back and recording the outcome
MIN_WRITE_BUDGET = 0.1  # seconds: the least a write, and the read that checks it, are each given


def duration_text(seconds: float) -> str:
    """``5s``, ``300ms``, ``1ns``: a timeout as the user wrote it, near enough."""
    for unit, size in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= size:
            return f"{seconds / size:.4g}{unit}"
    return f"{seconds / 1e-9:.4g}ns"


def finish_reserve(timeout: float) -> float:
    """Seconds of the step kept after the run's work deadline for reading back and recording the outcome:
    a tenth of the timeout, at most ``FINISH_RESERVE``."""
    return min(FINISH_RESERVE, timeout / 10)


class Api:
    """REST calls through the official client's ``ApiClient`` (its configuration, auth, TLS and proxies),
    with raw JSON in and out.

    Objects are read and written as the exact JSON the server sent: an undo must copy a ReplicaSet's pod
    template verbatim, as kubectl does, and a round trip through the generated models would drop fields the
    client does not know. Going through ``param_serialize``/``call_api`` instead of the generated
    ``AppsV1Api``/``CoreV1Api`` classes also spares every run their import: 0.7-1.0 s of a 1.2 s cold start
    (bench/cold_start.py).

    Transient failures are retried here, with bounds (``rollback.transport``); urllib3's own retries are
    turned off so this is the only place that decides. With a ``timeout`` the whole step is bounded: every
    request gets a timeout (connect and read together) from what is left, no request starts after the
    deadline, and a write is not sent when what is left cannot cover it and the read that checks it (two
    of the slowest round trips seen so far).
    """

    def __init__(self, api_client: Any, timeout: float | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.api_client = api_client
        self.clock = clock
        self.sleep = sleep
        self.deadline: float | None = None  # clock() value after which no request is sent
        self.timeout: float | None = None
        self.reserve = 0.0
        self.slowest = 0.0  # seconds: the longest round trip answered so far
        if timeout is not None:
            self.set_timeout(timeout)
        _disable_urllib3_retries(api_client)

    def set_timeout(self, timeout: float) -> None:
        """Bound every request from now on by ``timeout`` seconds, plus the reserve for recording the outcome."""
        self.timeout = timeout
        self.reserve = finish_reserve(timeout)
        self.deadline = self.clock() + timeout + self.reserve

    def work_deadline(self, proposed: float) -> float:
        """The deadline for the run's work (writes, waits): ``proposed``, but never later than the step's
        timeout minus the reserve kept for reading back and recording the outcome. Sets the timeout from
        ``proposed`` when none was set."""
        if self.deadline is None:
            self.set_timeout(max(0.0, proposed - self.clock()))
        assert self.deadline is not None
        return min(proposed, self.deadline - self.reserve)

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - self.clock()

    def request(self, method: str, path: str, body: Any = None, content_type: str | None = None,
                timeout: Any = REQUEST_TIMEOUT, stream: bool = False, retry: bool = True,
                accept: str = "application/json", **query: Any) -> Any:
        """One request, retried (unless ``retry`` is False) when ``rollback.transport`` says so; query
        parameters with a None value are left out. Returns the decoded JSON body, or with ``stream`` the open
        urllib3 response (the caller reads it and releases the connection). Raises ``AnswerLost`` when a
        write's outcome is unknown and ``DeadlineExceeded`` when the timeout ran out. ``accept``: the media type
        asked for (``PARTIAL_METADATA``: the object's metadata only)."""
        retries = 0
        while True:
            request_timeout = self._budget(method, path, timeout)
            try:
                return self._once(method, path, body, content_type, request_timeout, stream, accept, query)
            except _Failed as failed:
                step = transport.next_step(method, failed.outcome, retries, self.remaining())
                if step.action == "retry" and retry:
                    self.sleep(step.wait)
                    retries += 1
                    continue
                error = failed.error
                if step.action == "lost":
                    raise AnswerLost(error.status, error.reason or "AnswerLost",
                                     f"{error.message}; the {method} may or may not have been applied",
                                     error.causes) from None
                if failed.timed_out and self.deadline is not None and self.clock() >= self.deadline - 0.01:
                    raise DeadlineExceeded(f"the timeout ({self._timeout_text()}) ran out while waiting for the "
                                           f"answer to {method} {path}") from None
                if step.why:
                    error = ApiFailure(error.status, error.reason, f"{error.message} ({step.why})", error.causes)
                raise error from None

    def _budget(self, method: str, path: str, timeout: Any) -> Any:
        """The request's timeout, cut to what is left of the deadline; raises when nothing (or, for a write,
        too little) is left."""
        remaining = self.remaining()
        if remaining is None:
            return timeout
        if remaining <= 0:
            raise DeadlineExceeded(f"the timeout ({self._timeout_text()}) ran out before {method} {path} could be "
                                   f"sent")
        if transport.is_write(method) and remaining <= self.reserve:
            # Past the work deadline only reading back and recording the outcome (ledger, lease) are left, in
            # the reserve kept for them: send what fits, even if the read that would check a lost answer
            # does not (then the outcome is reported unknown, and a later run re-reads it).
            if remaining < MIN_WRITE_BUDGET:
                raise DeadlineExceeded(f"not sending {method} {path}: {remaining:.2f}s of the timeout "
                                       f"({self._timeout_text()}) are left; this write was not made")
        elif transport.is_write(method):
            check = max(MIN_WRITE_BUDGET, self.slowest)  # kept for the read that checks a lost answer
            if remaining < 2 * check:
                raise DeadlineExceeded(f"not sending {method} {path}: {remaining:.1f}s of the timeout "
                                       f"({self._timeout_text()}) are left, and a write and the read that checks "
                                       f"it need {2 * check:.1f}s (answers took up to {self.slowest:.1f}s); "
                                       f"this write was not made")
            remaining -= check
        if isinstance(timeout, tuple):
            return tuple(min(float(part), remaining) for part in timeout)
        return min(float(timeout), remaining)

    def _timeout_text(self) -> str:
        return duration_text(self.timeout) if self.timeout is not None else "deadline"

    def _once(self, method: str, path: str, body: Any, content_type: str | None, request_timeout: Any,
              stream: bool, accept: str, query: Mapping[str, Any]) -> Any:
        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": accept}
        if content_type:
            headers["Content-Type"] = content_type
        params = [(key, _query_value(value)) for key, value in query.items() if value is not None]
        serialized = self.api_client.param_serialize(method, path, query_params=params, header_params=headers,
                                                     body=body, auth_settings=["BearerToken"])
        started = self.clock()
        host = self.api_client.configuration.host
        try:
            response = self.api_client.call_api(*serialized, _request_timeout=request_timeout)
            if not 200 <= response.status <= 299 or not stream:
                data = response.read()
        except ApiException as err:
            failure = ApiFailure.from_exception(err)
            retry_after = transport.parse_retry_after((getattr(err, "headers", None) or {}).get("Retry-After"))
            # status 0 here is urllib3's SSLError: a TLS problem, not a lost answer
            raise _Failed(failure, transport.Outcome(failure.status or -1, retry_after)) from None
        except urllib3.exceptions.HTTPError as err:  # refused, reset, DNS, timeout: no answer at all
            reason = getattr(err, "reason", None) or err
            sent = not isinstance(err, urllib3.exceptions.ConnectTimeoutError)  # incl. NewConnectionError
            timed_out = isinstance(err, urllib3.exceptions.TimeoutError)
            raise _Failed(ApiFailure(UNREACHABLE, "Unreachable", f"no answer from the API server {host}: {reason}"),
                          transport.Outcome(UNREACHABLE, None, sent), timed_out) from None
        self.slowest = max(self.slowest, self.clock() - started)
        if not 200 <= response.status <= 299:
            failure = ApiFailure.from_exception(_Answer(response.status, response.reason, data))
            retry_after = transport.parse_retry_after((response.headers or {}).get("Retry-After"))
            raise _Failed(failure, transport.Outcome(response.status, retry_after))
        if stream:
            return response.response
        return json.loads(data) if data else {}

    def get(self, path: str, **query: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", path, **query)
        return result

    def get_metadata(self, path: str) -> dict[str, Any]:
        """GET one object's metadata only (a ``PartialObjectMetadata``): never its spec, data or status, so
        reading a Secret this way cannot read its values. Anything else in the answer is refused."""
        result: dict[str, Any] = self.request("GET", path, accept=PARTIAL_METADATA)
        if result.get("kind") != "PartialObjectMetadata":
            raise ApiFailure(406, "NotAcceptable", f"the API server answered a metadata-only GET of {path} with "
                                                   f"{result.get('kind')!r}, not PartialObjectMetadata")
        return result

    def patch(self, path: str, body: Any, content_type: str, **query: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.request("PATCH", path, body=body, content_type=content_type, **query)
        return result

    def create(self, path: str, body: Any, **query: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", path, body=body, content_type="application/json", **query)
        return result

    def replace(self, path: str, body: Any, **query: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.request("PUT", path, body=body, content_type="application/json", **query)
        return result

    def delete(self, path: str, body: Any = None, **query: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.request("DELETE", path, body=body,
                                              content_type="application/json" if body is not None else None,
                                              **query)
        return result

    def watch(self, path: str, timeout: float, **query: Any) -> Any:
        """Open a watch on a collection; returns the raw urllib3 response (read lines, then release it).
        Not retried here: the caller resumes from the last resourceVersion it saw."""
        remaining = self.remaining()
        if remaining is not None:
            timeout = min(timeout, remaining)
        return self.request("GET", path, timeout=(10.0, timeout + 15.0), stream=True, watch="true",
                            timeoutSeconds=max(1, int(timeout)), retry=False, **query)


class _Failed(Exception):
    """One attempt failed: the error to raise, and what ``transport.next_step`` needs to know."""

    def __init__(self, error: ApiFailure, outcome: transport.Outcome, timed_out: bool = False):
        super().__init__(str(error))
        self.error = error
        self.outcome = outcome
        self.timed_out = timed_out


def _disable_urllib3_retries(api_client: Any) -> None:
    """urllib3 retries a request on its own (3 times by default, PUT and DELETE included): turn that off so
    a write whose answer was lost is never sent again behind our back."""
    pool_manager = getattr(getattr(api_client, "rest_client", None), "pool_manager", None)
    pool_kw = getattr(pool_manager, "connection_pool_kw", None)
    if pool_manager is not None and isinstance(pool_kw, dict):
        pool_kw["retries"] = False
        pool_manager.clear()


@dataclass(frozen=True)
class _Answer:
    """A non-2xx response in the shape ``ApiFailure.from_exception`` reads."""

    status: int
    reason: str
    body: bytes | None


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
