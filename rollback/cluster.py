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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import urllib3
import yaml

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


class Api:
    """REST calls through the official client's ``ApiClient`` (its configuration, auth, TLS and proxies),
    with raw JSON in and out.

    Objects are read and written as the exact JSON the server sent: an undo must copy a ReplicaSet's pod
    template verbatim, as kubectl does, and a round trip through the generated models would drop fields the
    client does not know. Going through ``param_serialize``/``call_api`` instead of the generated
    ``AppsV1Api``/``CoreV1Api`` classes also spares every run their import: 0.7-1.0 s of a 1.2 s cold start
    (bench/cold_start.py).
    """

    def __init__(self, api_client: Any):
        self.api_client = api_client

    def request(self, method: str, path: str, body: Any = None, content_type: str | None = None,
                timeout: Any = REQUEST_TIMEOUT, stream: bool = False, accept: str = "application/json",
                **query: Any) -> Any:
        """One request; query parameters with a None value are left out. Returns the decoded JSON body, or
        with ``stream`` the open urllib3 response (the caller reads it and releases the connection).
        ``accept``: the media type asked for (``PARTIAL_METADATA``: the object's metadata only)."""
        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": accept}
        if content_type:
            headers["Content-Type"] = content_type
        params = [(key, _query_value(value)) for key, value in query.items() if value is not None]
        serialized = self.api_client.param_serialize(method, path, query_params=params, header_params=headers,
                                                     body=body, auth_settings=["BearerToken"])
        try:
            response = self.api_client.call_api(*serialized, _request_timeout=timeout)
        except ApiException as err:
            raise ApiFailure.from_exception(err) from None
        except urllib3.exceptions.HTTPError as err:  # refused, reset, DNS, TLS, timeout: no answer at all
            reason = getattr(err, "reason", None) or err
            raise ApiFailure(UNREACHABLE, "Unreachable", f"no answer from the API server "
                                                         f"{self.api_client.configuration.host}: {reason}") from None
        if not 200 <= response.status <= 299:
            response.read()
            raise ApiFailure.from_exception(_Answer(response.status, response.reason, response.data))
        if stream:
            return response.response
        data = response.read()
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

    def delete(self, path: str, **query: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.request("DELETE", path, **query)
        return result

    def watch(self, path: str, timeout: float, **query: Any) -> Any:
        """Open a watch on a collection; returns the raw urllib3 response (read lines, then release it)."""
        return self.request("GET", path, timeout=(10.0, timeout + 15.0), stream=True, watch="true",
                            timeoutSeconds=max(1, int(timeout)), **query)


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
