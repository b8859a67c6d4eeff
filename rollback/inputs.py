"""Parsing and validation of every action input (no I/O).

``from_env`` (the container: ``INPUT_<NAME>`` variables) and ``from_mapping`` (the CLI: kebab-case name → raw
string) share one parser. Every problem raises :class:`InputError`, which names the input, says what was given
(never the value of a secret input) and what is allowed.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import math
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from rollback import gha

INPUT_NAMES: tuple[str, ...] = (
    "release", "namespace", "deployment", "mode", "images", "manifests", "kubeconfig", "context", "server",
    "token", "certificate-authority-data", "insecure-skip-tls-verify", "wait", "timeout", "reason", "dry-run",
    "rollback-on-failure", "force-statefulset-rollback", "block", "allow-blocked", "github-token", "ledger",
    "allow-managed", "annotate-only", "images-apply-to-all",
    "wait-for-lease",
    "github-deployments", "github-environment", "ref", "environment-url", "production-environment",
    "fail-fast",
    "aws-role-arn", "azure-client-id", "azure-tenant-id",
)

SECRET_INPUTS = frozenset({"kubeconfig", "token", "github-token", "certificate-authority-data"})

DEFAULTS: Mapping[str, str] = {
    "namespace": "",  # empty: the kubeconfig context's namespace, else "default" (as kubectl)
    "mode": "auto",
    "insecure-skip-tls-verify": "false",
    "wait": "true",
    "timeout": "5m",
    "dry-run": "false",
    "rollback-on-failure": "false",
    "force-statefulset-rollback": "true",
    "block": "true",
    "allow-blocked": "false",
    "ledger": "true",
    "allow-managed": "false",
    "annotate-only": "false",
    "images-apply-to-all": "false",
    "wait-for-lease": "false",
    "github-deployments": "true",
    "fail-fast": "true",
}

MAX_RELEASE_LENGTH = 253
MAX_REASON_LENGTH = 1024
MAX_TIMEOUT_SECONDS = 6 * 3600.0  # a GitHub-hosted job cannot run longer

KINDS: Mapping[str, str] = {
    **dict.fromkeys(("deployment", "deployments", "deploy", "deployment.apps"), "Deployment"),
    **dict.fromkeys(("statefulset", "statefulsets", "sts", "statefulset.apps"), "StatefulSet"),
    **dict.fromkeys(("daemonset", "daemonsets", "ds", "daemonset.apps"), "DaemonSet"),
}

_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
DNS_LABEL = re.compile(_LABEL)
DNS_SUBDOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_EXCEPT_NEWLINE_TAB = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class Mode(enum.StrEnum):
    AUTO = "auto"
    CALCULATE = "calculate"
    DEPLOY = "deploy"
    ROLLBACK = "rollback"
    HISTORY = "history"
    UNBLOCK = "unblock"


RELEASE_REQUIRED = frozenset({Mode.AUTO, Mode.CALCULATE, Mode.DEPLOY, Mode.UNBLOCK})
CHANGES_ALLOWED = frozenset({Mode.AUTO, Mode.CALCULATE, Mode.DEPLOY})  # modes that accept images/manifests


class InputError(ValueError):
    """An action input is invalid. ``str()`` names the input, what was wrong and what is allowed."""

    def __init__(self, input_name: str, message: str) -> None:
        super().__init__(f"input '{input_name}': {message}")
        self.input_name = input_name
        self.message = message


@dataclass(frozen=True)
class WorkloadRef:
    kind: str  # "Deployment" | "StatefulSet" | "DaemonSet"
    name: str

    def __str__(self) -> str:
        return f"{self.kind.lower()}/{self.name}"


@dataclass(frozen=True)
class ImageSpec:
    container: str
    image: str
    workload: WorkloadRef | None = None  # WORKLOAD:CONTAINER=IMAGE; None: every listed workload with the container
    any_kind: bool = False  # the workload was given as a bare NAME: it matches a listed workload of any kind

    def __str__(self) -> str:
        if self.workload is None:
            return f"{self.container}={self.image}"
        shown = self.workload.name if self.any_kind else str(self.workload)
        return f"{shown}:{self.container}={self.image}"

    def applies_to(self, ref: WorkloadRef) -> bool:
        """Does this line name ``ref`` (a line without a workload names none)?"""
        if self.workload is None:
            return False
        if self.any_kind:
            return self.workload.name == ref.name
        return self.workload == ref


@dataclass(frozen=True)
class Inputs:
    release: str
    namespace: str
    workloads: tuple[WorkloadRef, ...]
    mode: Mode
    images: tuple[ImageSpec, ...]
    manifests: tuple[str, ...]
    kubeconfig: str | None = field(repr=False)  # decoded kubeconfig YAML/JSON text
    context: str | None
    server: str | None
    token: str | None = field(repr=False)
    certificate_authority_data: str | None = field(repr=False)  # base64 PEM, as in a kubeconfig
    insecure_skip_tls_verify: bool
    wait: bool
    timeout: float  # seconds
    reason: str
    dry_run: bool
    rollback_on_failure: bool
    force_statefulset_rollback: bool
    block: bool
    allow_blocked: bool
    github_token: str | None = field(repr=False)
    ledger: bool
    allow_managed: bool = False
    annotate_only: bool = False
    images_apply_to_all: bool = False
    wait_for_lease: bool = False  # another run holds a workload's lease: wait for it (within timeout)
    github_deployments: bool = True  # with github-token: record GitHub Deployments (rollback/github/deployments.py)
    github_environment: str | None = None  # None: the namespace
    ref: str | None = None  # None: GITHUB_SHA
    environment_url: str | None = None
    production_environment: bool | None = None  # None: GitHub's default (true for an environment "production")
    fail_fast: bool = True  # stop waiting as soon as a pod of the new revision will not recover
    aws_role_arn: str | None = None  # EKS: role to assume (with AWS_* keys, or with GitHub OIDC without them)
    azure_client_id: str | None = None  # AKS: workload identity app registration
    azure_tenant_id: str | None = None


def _given(name: str, raw: str) -> str:
    if name in SECRET_INPUTS:
        return f"got a value of {len(raw)} characters (not shown: it is a secret input)"
    shown = raw if len(raw) <= 80 else raw[:77] + "..."
    return f"got {shown!r}"


def parse_bool(name: str, raw: str) -> bool:
    """YAML 1.2 core booleans, as ``@actions/core`` ``getBooleanInput``."""
    if raw in ("true", "True", "TRUE"):
        return True
    if raw in ("false", "False", "FALSE"):
        return False
    raise InputError(name, f"{_given(name, raw)}; use true or false (also True/TRUE/False/FALSE)")


_DURATION_UNITS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_PLAIN_NUMBER = re.compile(r"\d+\.?\d*|\.\d+")


def parse_duration(name: str, raw: str) -> float:
    """Go-style durations (``300ms``, ``90s``, ``5m``, ``1h30m``, ``1.5h``); a plain number means seconds.

    Must be greater than zero and at most 6h.
    """
    text = raw.strip()
    allowed = "use a Go-style duration such as 90s, 5m or 1h30m, or seconds; more than 0 and at most 6h"
    if _PLAIN_NUMBER.fullmatch(text):
        seconds = float(text)
    else:
        seconds, pos = 0.0, 0
        while pos < len(text):
            part = _DURATION_PART.match(text, pos)
            if part is None:
                raise InputError(name, f"{_given(name, raw)}; {allowed}")
            seconds += float(part.group(1)) * _DURATION_UNITS[part.group(2)]
            pos = part.end()
        if not text:
            raise InputError(name, f"{_given(name, raw)}; {allowed}")
    if not math.isfinite(seconds) or seconds <= 0 or seconds > MAX_TIMEOUT_SECONDS:
        raise InputError(name, f"{_given(name, raw)} ({seconds:g}s); {allowed}")
    return seconds


def parse_mode(raw: str) -> Mode:
    try:
        return Mode(raw.lower())
    except ValueError:
        allowed = ", ".join(mode.value for mode in Mode)
        raise InputError("mode", f"{_given('mode', raw)}; use one of: {allowed}") from None


def parse_release(raw: str) -> str:
    if len(raw) > MAX_RELEASE_LENGTH:
        raise InputError(
            "release", f"is {len(raw)} characters long; at most {MAX_RELEASE_LENGTH} are allowed"
        )
    if _CONTROL.search(raw):
        raise InputError(
            "release",
            f"{_given('release', raw)}; a release cannot contain control characters (newlines, tabs, ...)",
        )
    return raw


def parse_namespace(raw: str) -> str:
    """Empty means "the kubeconfig context's namespace, else default", resolved once connected."""
    if raw and (len(raw) > 63 or not DNS_LABEL.fullmatch(raw)):
        raise InputError(
            "namespace",
            f"{_given('namespace', raw)}; a namespace is a DNS-1123 label: at most 63 lowercase letters, "
            "digits and '-', starting and ending with a letter or digit",
        )
    return raw


def _items(raw: str, inline: bool) -> list[tuple[int, str]]:
    """(line number, item) pairs from a multi-line input; blank lines and ``#`` comment lines are dropped.

    With ``inline`` (names and image references, which cannot contain ``#`` or ``,``) a ``#`` also starts a
    comment inside a line and commas separate items too.
    """
    items: list[tuple[int, str]] = []
    for number, line in enumerate(raw.splitlines(), start=1):
        if line.lstrip().startswith("#"):
            continue
        parts = line.split("#", 1)[0].split(",") if inline else [line]
        items.extend((number, part.strip()) for part in parts if part.strip())
    return items


def parse_workloads(raw: str, name: str = "deployment") -> tuple[WorkloadRef, ...]:
    """One workload per line (commas also separate): ``NAME`` (a Deployment) or ``KIND/NAME``."""
    kinds = ", ".join(KINDS)
    refs: list[WorkloadRef] = []
    for line, item in _items(raw, inline=True):
        where = f"line {line} {item!r}"
        kind_text, slash, workload = item.rpartition("/")
        if not slash:
            kind_text, workload = "deployment", item
        kind = KINDS.get(kind_text.strip().lower())
        if kind is None:
            raise InputError(
                name, f"{where}: unknown kind {kind_text!r}; write NAME or KIND/NAME, KIND one of: {kinds}"
            )
        workload = workload.strip()
        if len(workload) > 253 or not DNS_SUBDOMAIN.fullmatch(workload):
            hint = " (names are lowercase)" if workload.lower() != workload else ""
            raise InputError(
                name,
                f"{where}: {workload!r} is not a valid name{hint}; a name is a DNS-1123 subdomain: "
                "lowercase letters, digits, '-' and '.', at most 253 characters",
            )
        ref = WorkloadRef(kind, workload)
        if ref in refs:
            raise InputError(name, f"{where}: {ref} is listed twice; list each workload once")
        refs.append(ref)
    return tuple(refs)


def parse_images(raw: str) -> tuple[ImageSpec, ...]:
    """``CONTAINER=IMAGE`` or ``WORKLOAD:CONTAINER=IMAGE`` items separated by commas or newlines; WORKLOAD is
    ``NAME`` or ``KIND/NAME`` as in the ``deployment`` input."""
    specs: list[ImageSpec] = []
    for line, item in _items(raw, inline=True):
        where = f"line {line} {item!r}"
        target, eq, image = (part.strip() for part in item.partition("="))
        workload_text, colon, container = (part.strip() for part in target.rpartition(":"))
        if not eq or not container or not image or (colon and not workload_text):
            raise InputError("images", f"{where}: write CONTAINER=IMAGE or WORKLOAD:CONTAINER=IMAGE, e.g. "
                                       f"web=ghcr.io/acme/web:1.2.3 or api:app=ghcr.io/acme/api:1.2.3")
        workload: WorkloadRef | None = None
        if colon:
            try:
                refs = parse_workloads(workload_text, name="images")
            except InputError as err:
                raise InputError("images", f"{where}: the workload before ':' is not valid: {err.message}") from None
            workload = refs[0]
        if len(container) > 63 or not DNS_LABEL.fullmatch(container):
            raise InputError(
                "images",
                f"{where}: container name {container!r} is not a DNS-1123 label "
                "(lowercase letters, digits and '-', at most 63 characters)",
            )
        if re.search(r"\s", image):
            raise InputError("images", f"{where}: the image {image!r} contains whitespace")
        spec = ImageSpec(container, image, workload, any_kind=bool(colon) and "/" not in workload_text)
        if any(other.container == container and other.workload == workload and other.any_kind == spec.any_kind
               for other in specs):
            shown = f"container {container!r}" + (f" of {workload_text}" if workload else "")
            raise InputError("images", f"{where}: {shown} is given twice")
        specs.append(spec)
    return tuple(specs)


def parse_manifests(raw: str) -> tuple[str, ...]:
    """Paths or glob patterns, one per line (``#`` comments and blank lines ignored)."""
    return tuple(item for _, item in _items(raw, inline=False))


def _has_clusters(text: str) -> bool:
    """Does this text look like a kubeconfig: a mapping with a top-level ``clusters`` key?

    Standard library only: JSON is parsed; YAML is checked for an unindented ``clusters:`` key. The full parse
    happens when the client is built (cluster.py).
    """
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except ValueError:
            return False
        return isinstance(data, dict) and "clusters" in data
    return re.search(r"""^(clusters|"clusters"|'clusters')[ \t]*:""", text, re.MULTILINE) is not None


def parse_kubeconfig(raw: str) -> str:
    """Kubeconfig content, as YAML/JSON text or base64 of it; returns the decoded text."""
    if _has_clusters(raw):
        return raw
    try:
        decoded = base64.b64decode(re.sub(r"\s+", "", raw), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        decoded = ""
    if decoded and _has_clusters(decoded):
        return decoded
    hint = ""
    if "\n" not in raw.strip() and ("/" in raw or raw.strip().startswith("~")):
        hint = (" It looks like a file path: this input takes the file's content; to use a file, set the "
                "KUBECONFIG environment variable to its path instead.")
    raise InputError(
        "kubeconfig",
        f"{_given('kubeconfig', raw)} that is neither kubeconfig YAML (a mapping with 'clusters') nor "
        f"base64 of it; pass the kubeconfig content, e.g. ${{{{ secrets.KUBECONFIG }}}}.{hint}",
    )


def parse_server(raw: str) -> str:
    url = urllib.parse.urlsplit(raw)
    if url.scheme not in ("http", "https") or not url.netloc:
        raise InputError(
            "server", f"{_given('server', raw)}; use the API server URL, e.g. https://api.example.com:6443"
        )
    return raw


def parse_certificate_authority_data(raw: str) -> str:
    try:
        pem = base64.b64decode(re.sub(r"\s+", "", raw), validate=True)
    except (binascii.Error, ValueError):
        pem = b""
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise InputError(
            "certificate-authority-data",
            f"{_given('certificate-authority-data', raw)} that is not base64 of a PEM certificate; "
            "use the same value as a kubeconfig's certificate-authority-data",
        )
    return raw


def parse_reason(raw: str) -> str:
    if len(raw) > MAX_REASON_LENGTH:
        raise InputError("reason", f"is {len(raw)} characters long; at most {MAX_REASON_LENGTH} are allowed")
    if _CONTROL_EXCEPT_NEWLINE_TAB.search(raw.replace("\r\n", "\n")):
        raise InputError("reason", "contains control characters; only text, newlines and tabs are allowed")
    return raw


def _optional(raw: str) -> str | None:
    return raw or None


def parse_github_environment(raw: str) -> str:
    """A GitHub environment name as the Environments settings page accepts it: 1 to 255 characters, no control
    characters (GitHub compares names case-insensitively)."""
    if len(raw) > 255:
        raise InputError("github-environment", f"is {len(raw)} characters long; GitHub allows at most 255")
    if _CONTROL.search(raw):
        raise InputError("github-environment", "contains control characters; use the environment's name as "
                         "shown on the repository's Environments page")
    return raw


def parse_ref(raw: str) -> str:
    """A git ref for GitHub Deployments: a branch, tag or commit SHA (no spaces or control characters)."""
    if len(raw) > 255 or any(c.isspace() for c in raw) or _CONTROL.search(raw):
        raise InputError("ref", f"{_given('ref', raw)}; use a branch, tag or commit SHA (no spaces, at most 255 "
                         "characters), or leave it empty for the workflow's commit (GITHUB_SHA)")
    return raw


def parse_environment_url(raw: str) -> str:
    parts = urllib.parse.urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in raw):
        raise InputError("environment-url", f"{_given('environment-url', raw)}; use an http:// or https:// URL "
                         "of the deployed environment, e.g. https://staging.example.com")
    return raw


def parse_optional_bool(name: str, raw: str) -> bool | None:
    return parse_bool(name, raw) if raw else None


def from_mapping(values: Mapping[str, str]) -> Inputs:
    """Parse raw input strings keyed by kebab-case input name; missing or empty values take the defaults.

    Values are trimmed like ``@actions/core`` ``getInput``. Also runs :func:`validate_for_mode`.
    """
    unknown = sorted(set(values) - set(INPUT_NAMES))
    if unknown:
        raise InputError(
            unknown[0], f"is not an input of this action; known inputs: {', '.join(INPUT_NAMES)}"
        )
    raw = {name: (values.get(name) or "").strip() or DEFAULTS.get(name, "") for name in INPUT_NAMES}

    def optional(name: str, parse: Callable[[str], str]) -> str | None:
        return parse(raw[name]) if raw[name] else None

    inputs = Inputs(
        release=parse_release(raw["release"]),
        namespace=parse_namespace(raw["namespace"]),
        workloads=parse_workloads(raw["deployment"]),
        mode=parse_mode(raw["mode"]),
        images=parse_images(raw["images"]),
        manifests=parse_manifests(raw["manifests"]),
        kubeconfig=optional("kubeconfig", parse_kubeconfig),
        context=_optional(raw["context"]),
        server=optional("server", parse_server),
        token=_optional(raw["token"]),
        certificate_authority_data=optional("certificate-authority-data", parse_certificate_authority_data),
        insecure_skip_tls_verify=parse_bool("insecure-skip-tls-verify", raw["insecure-skip-tls-verify"]),
        wait=parse_bool("wait", raw["wait"]),
        timeout=parse_duration("timeout", raw["timeout"]),
        reason=parse_reason(raw["reason"]),
        dry_run=parse_bool("dry-run", raw["dry-run"]),
        rollback_on_failure=parse_bool("rollback-on-failure", raw["rollback-on-failure"]),
        force_statefulset_rollback=parse_bool(
            "force-statefulset-rollback", raw["force-statefulset-rollback"]
        ),
        block=parse_bool("block", raw["block"]),
        allow_blocked=parse_bool("allow-blocked", raw["allow-blocked"]),
        github_token=_optional(raw["github-token"]),
        ledger=parse_bool("ledger", raw["ledger"]),
        allow_managed=parse_bool("allow-managed", raw["allow-managed"]),
        annotate_only=parse_bool("annotate-only", raw["annotate-only"]),
        images_apply_to_all=parse_bool("images-apply-to-all", raw["images-apply-to-all"]),
        wait_for_lease=parse_bool("wait-for-lease", raw["wait-for-lease"]),
        github_deployments=parse_bool("github-deployments", raw["github-deployments"]),
        github_environment=optional("github-environment", parse_github_environment),
        ref=optional("ref", parse_ref),
        environment_url=optional("environment-url", parse_environment_url),
        production_environment=parse_optional_bool("production-environment", raw["production-environment"]),
        fail_fast=parse_bool("fail-fast", raw["fail-fast"]),
        aws_role_arn=optional("aws-role-arn", parse_aws_role_arn),
        azure_client_id=optional("azure-client-id", parse_azure_client_id),
        azure_tenant_id=optional("azure-tenant-id", parse_azure_tenant_id),
    )
    validate_for_mode(inputs)
    return inputs


def from_env(environ: Mapping[str, str] | None = None) -> Inputs:
    """Parse the ``INPUT_<NAME>`` variables the runner gives a container action (hyphens kept)."""
    return from_mapping({name: gha.get_input(name, environ) for name in INPUT_NAMES})


def validate_for_mode(inputs: Inputs) -> None:
    """Rules that combine several inputs; raises :class:`InputError`."""
    mode = inputs.mode
    if mode in RELEASE_REQUIRED and not inputs.release:
        raise InputError(
            "release",
            f"is required for mode {mode}; set it to the release to act on (an empty release is only "
            "allowed for rollback, meaning the previous revision, and for history)",
        )
    if mode is not Mode.UNBLOCK and not inputs.workloads:
        raise InputError(
            "deployment",
            f"no workload given; mode {mode} needs at least one line NAME or KIND/NAME, e.g. deployment/web",
        )
    if inputs.images and inputs.manifests:
        raise InputError("images", "images and manifests cannot be used together; give one of them")
    if inputs.annotate_only and (inputs.images or inputs.manifests):
        raise InputError("annotate-only", "annotate-only: true writes only the change-cause and cannot be used "
                                          "with images or manifests; remove one of them")
    if (inputs.images or inputs.manifests) and mode not in CHANGES_ALLOWED:
        raise InputError(
            "images" if inputs.images else "manifests",
            f"is only used with mode deploy, auto or calculate, not {mode}; remove it",
        )
    if inputs.server:
        if inputs.kubeconfig:
            raise InputError(
                "server",
                "server and kubeconfig cannot be used together; give the cluster either as a kubeconfig "
                "or as server (with token and certificate-authority-data)",
            )
        if inputs.context:
            raise InputError("context", "context selects a kubeconfig context and cannot be used with server")
    else:
        for name, given in (("token", inputs.token),
                            ("certificate-authority-data", inputs.certificate_authority_data)):
            if given:
                raise InputError(name, "is only used together with server; set server to the API server URL")


def secret_values(inputs: Inputs) -> tuple[str, ...]:
    """Values to pass to ``gha.add_mask``: the secret inputs and every credential inside the kubeconfig input,
    found by walking the parsed YAML (``rollback.credentials.masking``), so flow style, folded scalars, OIDC
    tokens and exec ``env`` values are found too.

    The kubeconfig as a whole is not returned: masking each of its lines would also hide common lines such
    as ``kind: Config``.
    """
    import yaml  # lazy, like the walk: only needed with a kubeconfig input

    from rollback.credentials.masking import credential_values

    values = [inputs.token, inputs.github_token]
    if inputs.kubeconfig:
        try:
            loaded = yaml.safe_load(inputs.kubeconfig)
        except yaml.YAMLError:
            loaded = None  # not a kubeconfig: connecting refuses it without showing it
        if isinstance(loaded, dict):
            values += credential_values(loaded)
    return tuple(dict.fromkeys(value for value in values if value))


_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}")
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def parse_aws_role_arn(raw: str) -> str:
    if not _ROLE_ARN.fullmatch(raw):
        raise InputError("aws-role-arn", f"{_given('aws-role-arn', raw)}; give an IAM role ARN like "
                                         f"arn:aws:iam::123456789012:role/deployer")
    return raw


def parse_azure_client_id(raw: str) -> str:
    if not _GUID.fullmatch(raw):
        raise InputError("azure-client-id", f"{_given('azure-client-id', raw)}; give the application (client) ID "
                                            f"of the app registration, a GUID")
    return raw


def parse_azure_tenant_id(raw: str) -> str:
    if not (_GUID.fullmatch(raw) or DNS_SUBDOMAIN.fullmatch(raw.lower())):
        raise InputError("azure-tenant-id", f"{_given('azure-tenant-id', raw)}; give the directory (tenant) ID, "
                                            f"a GUID (or the tenant's domain, e.g. contoso.onmicrosoft.com)")
    return raw
