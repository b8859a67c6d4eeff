"""Connecting to the cluster the way real users do.

Order of precedence: the ``kubeconfig`` input (content), the ``server`` + ``token`` inputs, the ``KUBECONFIG``
environment variable (one path or a ``:``-separated list), the in-cluster service account, ``~/.kube/config``.

A kubeconfig user that runs an exec plugin or names an auth-provider is never handed to the Kubernetes client
as it is (the client would run the plugin): ``credentials.exec_plugins`` decides which native cloud path
satisfies it, ``credentials`` mints the bearer token, and any other plugin is refused before any request.
Every credential read from a kubeconfig file or minted here is masked (``::add-mask::``) as soon as it is
known; the ``kubeconfig`` input is masked by the caller, before anything is printed. Certificate files the
client needs go into one private temporary directory, removed when the process exits.
"""

from __future__ import annotations

import atexit
import base64
import copy
import ipaddress
import json
import os
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import urllib3
import yaml

from . import gha, transport

REQUEST_TIMEOUT = 30.0  # seconds, for every non-watch API request
PARTIAL_METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"  # Accept: metadata only
UNREACHABLE = 0  # ApiFailure.status when the API server gave no answer at all
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
CONTAINER_WORKSPACE = "/github/workspace"  # GITHUB_WORKSPACE inside a container action (actions/runner)


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
    aws_role_arn: str | None = None  # EKS: assume this role before minting the token
    azure_client_id: str | None = None  # AKS: workload identity app
    azure_tenant_id: str | None = None
    timeout: float | None = None  # seconds for the cloud token exchanges (the step's timeout)


@dataclass(frozen=True)
class Connection:
    api_client: Any  # kubernetes.client.ApiClient
    source: str  # where the credentials came from, safe to print
    server: str  # API server URL, safe to print
    namespace: str | None = None  # the namespace the kubeconfig context (or service account) names


@dataclass
class _Masker:
    """Masks each credential once (a repeated ``::add-mask::`` line is noise)."""

    seen: set[str] = field(default_factory=set)

    def __call__(self, value: str) -> None:
        value = value.strip()
        if value and value not in self.seen:
            self.seen.add(value)
            gha.add_mask(value)


def connect(credentials: Credentials, environ: Mapping[str, str] | None = None) -> Connection:
    """Build an ``ApiClient``. Raises ``ClusterConfigError`` naming the input (or variable) to fix."""
    from kubernetes import client, config  # lazy: keeps `--help` and input errors fast

    env = os.environ if environ is None else environ
    if credentials.kubeconfig:
        loaded = decode_kubeconfig(credentials.kubeconfig)
        # the caller masked the kubeconfig input's credentials before anything was printed
        return _from_kubeconfig(loaded, credentials, "kubeconfig input", env, _Masker(), mask_file=False)
    if credentials.server:
        from .credentials import CloudOptions, unused_options

        connection = _from_server_token(credentials)
        for unused in unused_options(None, CloudOptions(credentials.aws_role_arn, credentials.azure_client_id,
                                                        credentials.azure_tenant_id)):
            gha.warning(unused)
        warning = loopback_warning(connection.server, env)
        if warning:
            gha.warning(warning)
        return connection
    if env.get("KUBECONFIG"):
        loaded = read_kubeconfig_files(env["KUBECONFIG"], "KUBECONFIG", env)
        return _from_kubeconfig(loaded, credentials, "KUBECONFIG", env, _Masker())
    if env.get("KUBERNETES_SERVICE_HOST"):
        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException as err:
            raise ClusterConfigError("kubeconfig", f"in-cluster configuration failed: {err}. Set the kubeconfig "
                                                   f"input or mount a service account token.") from err
        return Connection(client.ApiClient(configuration), "in-cluster service account", configuration.host,
                          _read_text(SERVICE_ACCOUNT_NAMESPACE))
    home_config = os.path.join(env.get("HOME", os.path.expanduser("~")), ".kube", "config")
    if os.path.isfile(home_config):
        loaded = read_kubeconfig_files(home_config, "~/.kube/config", env)
        return _from_kubeconfig(loaded, credentials, "~/.kube/config", env, _Masker())
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


# -- the private directory for certificate files ----------------------------------------------------------------

_private_dir: str | None = None


def private_dir() -> str:
    """A directory only this user can read (``mkdtemp`` makes it 0700), removed when the process exits."""
    global _private_dir
    if _private_dir is None or not os.path.isdir(_private_dir):
        _private_dir = tempfile.mkdtemp(prefix="kube-release-rollback-")
        atexit.register(remove_private_dir)
    return _private_dir


def remove_private_dir() -> None:
    global _private_dir
    if _private_dir is not None:
        shutil.rmtree(_private_dir, ignore_errors=True)
        _private_dir = None


# -- kubeconfig files -------------------------------------------------------------------------------------------

_PATH_KEYS = {"cluster": ("certificate-authority",), "user": ("client-certificate", "client-key", "tokenFile")}


def is_container_action(environ: Mapping[str, str]) -> bool:
    """Running as the container of a GitHub container action: the runner sets GITHUB_WORKSPACE to the
    container path (actions/runner ContainerActionHandler). A ``python -m rollback`` step on the runner
    itself sees the host path."""
    return environ.get("GITHUB_ACTIONS") == "true" and environ.get("GITHUB_WORKSPACE") == CONTAINER_WORKSPACE


def missing_path_hint(path: str, index: int, environ: Mapping[str, str]) -> str:
    """Why a KUBECONFIG entry is not visible here, and what to do (a pure function of the facts)."""
    fix = ("write the kubeconfig into the workspace (GITHUB_WORKSPACE) and point KUBECONFIG there, or pass its "
           "content as the kubeconfig input")
    if index > 0:
        return (f"{path} does not exist here: the runner translates only the first entry of a ':'-separated "
                f"KUBECONFIG into the container's paths; {fix}")
    if is_container_action(environ) and not path.startswith("/github/"):
        return (f"{path} does not exist in the action's container: it is a path on the runner, and the container "
                f"sees only /github/workspace, /github/home and, on runner 2.331 or later, RUNNER_TEMP as "
                f"/github/runner_temp (2.329-2.330: behind a feature flag; older: not at all); {fix}")
    return f"{path} does not exist or is not a readable file; {fix}"


def read_kubeconfig_files(paths: str, source: str, environ: Mapping[str, str]) -> dict[str, Any]:
    """Read and merge the kubeconfig files as kubectl does: the first file to define a cluster, user or
    context name wins, and the first non-empty current-context wins. Relative file paths inside a file are
    made absolute against that file's directory. Missing entries are skipped (kubectl does too), with a
    warning in a container action, where they are usually a path the runner did not translate."""
    files = [p for p in paths.split(os.pathsep) if p]
    loaded: list[tuple[str, dict[str, Any]]] = []
    missing: list[str] = []
    for index, path in enumerate(files):
        if not os.path.isfile(path):
            missing.append(missing_path_hint(path, index, environ))
            continue
        try:
            with open(path, encoding="utf-8") as handle:
                content = yaml.safe_load(handle) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ClusterConfigError("kubeconfig", f"{source} entry {path} could not be read: "
                                                   f"{err.__class__.__name__}") from err
        if not isinstance(content, dict):
            raise ClusterConfigError("kubeconfig", f"{source} entry {path} is not a kubeconfig (a YAML mapping)")
        loaded.append((path, content))
    if not loaded:
        raise ClusterConfigError("kubeconfig", f"{source} names no readable kubeconfig: " + "; ".join(missing))
    if missing and is_container_action(environ):
        for hint in missing:
            gha.warning(gha.escape_log(f"{source}: {hint}"))
    return merge_kubeconfigs(loaded)


def merge_kubeconfigs(files: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    merged: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": []}
    for path, content in files:
        base = os.path.dirname(os.path.abspath(path))
        for section, inner in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
            known = {entry.get("name") for entry in merged[section]}
            for entry in content.get(section) or []:
                if not isinstance(entry, dict) or entry.get("name") in known:
                    continue
                entry = copy.deepcopy(entry)
                body = entry.get(inner)
                for key in _PATH_KEYS.get(inner, ()):
                    if isinstance(body, dict) and isinstance(body.get(key), str) and body[key] \
                            and not os.path.isabs(body[key]):
                        body[key] = os.path.join(base, body[key])
                merged[section].append(entry)
                known.add(entry.get("name"))
        if content.get("current-context") and not merged.get("current-context"):
            merged["current-context"] = content["current-context"]
    return merged


# -- from a parsed kubeconfig to a client -------------------------------------------------------------------------


def _named(loaded: Mapping[str, Any], section: str, name: Any) -> dict[str, Any] | None:
    for entry in loaded.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry
    return None


def selected(loaded: Mapping[str, Any], context: str | None) -> tuple[str | None, dict[str, Any], dict[str, Any]]:
    """(context name, its context mapping, its user mapping) of the context kubectl would use."""
    name = context or loaded.get("current-context")
    entry = _named(loaded, "contexts", name) if name else None
    body: dict[str, Any] = {}
    if entry is not None and isinstance(entry.get("context"), dict):
        body = entry["context"]
    user_entry = _named(loaded, "users", body.get("user")) if body.get("user") else None
    user: dict[str, Any] = {}
    if user_entry is not None and isinstance(user_entry.get("user"), dict):
        user = user_entry["user"]
    return (str(name) if name else None), body, user


def _from_kubeconfig(loaded: dict[str, Any], credentials: Credentials, source: str, environ: Mapping[str, str],
                     mask: _Masker, mask_file: bool = True) -> Connection:
    from kubernetes import client, config

    from . import credentials as cloud
    from .credentials.exec_plugins import Unsupported, classify, unsupported_message
    from .credentials.http import deadline as credential_deadline
    from .credentials.masking import credential_values
    from .credentials.refresh import RefreshingToken, refresh_after

    if mask_file:
        for value in credential_values(loaded):
            mask(value)
    context = credentials.context
    _check_context(loaded, context, source)
    context_name, context_body, user = selected(loaded, context)
    plan = classify(user)
    if isinstance(plan, Unsupported):
        raise ClusterConfigError("kubeconfig", unsupported_message(str(context_body.get("user") or ""), plan))
    options = cloud.CloudOptions(credentials.aws_role_arn, credentials.azure_client_id, credentials.azure_tenant_id)
    for unused in cloud.unused_options(plan, options):
        gha.warning(unused)
    try:
        with credential_deadline(credentials.timeout):
            minted = cloud.bearer_token(plan, options, environ, mask)
    except cloud.CredentialError as err:
        raise ClusterConfigError(err.input_name, err.message) from None
    how = ""
    if minted is not None:
        loaded = with_bearer_token(loaded, str(context_body.get("user")), minted[0])
        how = f", {minted[1]}"
    configuration = client.Configuration()
    try:
        config.load_kube_config_from_dict(loaded, context=context_name, client_configuration=configuration,
                                          persist_config=False, temp_file_path=private_dir())
    except (config.ConfigException, KeyError, TypeError, ValueError) as err:
        raise ClusterConfigError("kubeconfig", f"the {source} cannot be used: {err}") from err
    if minted is not None:
        every = refresh_after(plan)
        if every is not None:
            def mint_again() -> str:
                again = cloud.bearer_token(plan, options, environ, mask)
                if again is None:  # not for a plan that minted once; say so rather than send no token
                    raise cloud.CredentialError("kubeconfig", "the token could not be minted again")
                return again[0]

            renewing = RefreshingToken(minted[0], mint_again, every, lambda text: gha.warning(gha.escape_log(text)))
            # replaces the loader's hook, which would only set the same token again
            configuration.refresh_api_key_hook = renewing.hook  # type: ignore[assignment]
    warning = loopback_warning(configuration.host, environ)
    if warning:
        gha.warning(warning)
    namespace = context_body.get("namespace")
    return Connection(client.ApiClient(configuration), _describe(source, context) + how, configuration.host,
                      str(namespace) if namespace else None)


def with_bearer_token(loaded: Mapping[str, Any], user_name: str, token: str) -> dict[str, Any]:
    """A copy where the user authenticates with ``token`` instead of its exec plugin or auth-provider
    (client certificates, if any, stay)."""
    result = copy.deepcopy(dict(loaded))
    for entry in result.get("users") or []:
        if isinstance(entry, dict) and entry.get("name") == user_name and isinstance(entry.get("user"), dict):
            user = {k: v for k, v in entry["user"].items() if k not in ("exec", "auth-provider", "tokenFile")}
            user["token"] = token
            entry["user"] = user
    return result


def loopback_warning(server: str, environ: Mapping[str, str]) -> str | None:
    """A container action cannot reach the runner's loopback; say so (only there: the CLI on the runner can)."""
    if not is_container_action(environ):
        return None
    host = urllib.parse.urlsplit(server).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return None
    return (f"the API server is {server}, a loopback address: inside this action's container that is the "
            f"container itself, not the runner, so the connection will fail. For kind, create the cluster "
            f"with networking.apiServerAddress set to an address of the runner (e.g. its docker0 IP) and use "
            f"that in the kubeconfig")


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


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
        handle = tempfile.NamedTemporaryFile("wb", suffix=".crt", delete=False, dir=private_dir())
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
MIN_WRITE_BUDGET = 0.02  # seconds: the least a write, and the read that checks it, are each given


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
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 on_retry: Callable[[str], None] | None = None, started: float | None = None):
        self.api_client = api_client
        self.clock = clock
        self.sleep = sleep
        self.on_retry = on_retry or (lambda line: gha.info(gha.escape_log(line)))  # says why a request waits
        self.deadline: float | None = None  # clock() value after which no request is sent
        self.timeout: float | None = None
        self.reserve = 0.0
        self.slowest = 0.0  # seconds: the longest round trip answered so far
        if timeout is not None:
            self.set_timeout(timeout, started)
        _disable_urllib3_retries(api_client)

    def set_timeout(self, timeout: float, started: float | None = None) -> None:
        """Bound every request by ``timeout`` seconds from ``started`` (a ``clock()`` value; default now), plus
        the reserve for recording the outcome. The step passes when it started, so the time spent connecting
        (a cloud token exchange) comes out of the same timeout."""
        self.timeout = timeout
        self.reserve = finish_reserve(timeout)
        self.deadline = (self.clock() if started is None else started) + timeout + self.reserve

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
                    error = failed.error
                    said = f"{error.status} {error.reason}" if error.status else error.message
                    self.on_retry(f"{method} {path}: {said}; sending it again in {step.wait:g}s")
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
        Not retried here: the caller resumes from the last resourceVersion it saw. A watch is waiting, the
        run's work: it ends by the work deadline, so the reserve for recording the outcome stays untouched."""
        read_timeout = timeout + 15.0
        remaining = self.remaining()
        if remaining is not None:
            work_left = max(0.05, remaining - self.reserve)
            timeout = min(timeout, work_left)
            read_timeout = min(read_timeout, work_left)
        return self.request("GET", path, timeout=(10.0, read_timeout), stream=True, watch="true",
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
