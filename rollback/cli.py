"""Command line: ``python -m rollback`` (flags named like the action's inputs) and the container entrypoint.

Exit codes: 0 success (including skipped and dry runs), 1 failed (bad input, refused, rollout failed),
2 failed and restored: the rollout failed and the previous release was put back (``rollback-on-failure``
or an automatic compensation), outputs say what state each workload ended in.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from . import __version__, gha, manifests
from .inputs import INPUT_NAMES, InputError, Inputs, from_env, from_mapping, secret_values
from .report import RunReport

if TYPE_CHECKING:
    from .cluster import Api
    from .github.deployments import Recorder
    from .github.releases import GitHubReleases

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_RESTORED = 2

SECRET_INPUTS = ("kubeconfig", "token", "github-token", "certificate-authority-data")
BOOLEAN_INPUTS = ("wait", "dry-run", "rollback-on-failure", "force-statefulset-rollback", "block",
                  "allow-blocked", "insecure-skip-tls-verify", "ledger", "allow-managed", "annotate-only",
                  "images-apply-to-all", "wait-for-lease", "github-deployments", "production-environment",
                  "fail-fast")
REPEATABLE_INPUTS = ("deployment", "images", "manifests")


def main_action(environ: Mapping[str, str] | None = None) -> int:
    """Container entrypoint: inputs from ``INPUT_*`` variables, outputs to ``$GITHUB_OUTPUT``."""
    env = dict(os.environ if environ is None else environ)
    _mask_raw({name: gha.get_input(name, environ=env) for name in SECRET_INPUTS})
    try:
        inputs = from_env(env)
    except InputError as err:
        gha.error(str(err), title=f"Invalid input: {err.input_name}")
        return EXIT_FAILED
    return run(inputs, env)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    env = dict(os.environ if environ is None else environ)
    args = _parser().parse_args(argv)
    raw: dict[str, str] = {}
    for name in INPUT_NAMES:
        value = getattr(args, name.replace("-", "_"), None)
        if value is None:
            continue
        if isinstance(value, list):
            value = "\n".join(value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        raw[name] = str(value)
    if args.kubeconfig_file:
        try:
            with open(args.kubeconfig_file, encoding="utf-8") as handle:
                raw["kubeconfig"] = handle.read()
        except OSError as err:
            gha.error(gha.escape_log(f"--kubeconfig {args.kubeconfig_file}: {err.strerror or err}; give the path "
                                     f"of a readable kubeconfig file"), title="Invalid input: kubeconfig")
            return EXIT_FAILED
    _mask_raw({name: raw.get(name, "") for name in SECRET_INPUTS})
    try:
        inputs = from_mapping(raw)
    except InputError as err:
        gha.error(str(err), title=f"Invalid input: {err.input_name}")
        return EXIT_FAILED
    return run(inputs, env)


def run(inputs: Inputs, environ: Mapping[str, str]) -> int:
    """Connect, execute, and always write outputs and the summary."""
    from .cancellation import Cancellation, Cancelled
    from .cluster import Api, ApiFailure, ClusterConfigError, Credentials, connect
    from .lease import Leases, RunIdentity
    from .ledger import ConfigMapLedger, GitHubContext
    from .report import outputs, summary_markdown
    from .run import execute
    from .targets import Context, RunError
    from .workloads import WorkloadError

    for secret in secret_values(inputs):
        gha.add_mask(secret)
    started = time.monotonic()
    cancellation = Cancellation()
    report: RunReport | None = None
    code = EXIT_OK
    try:
        with gha.group("Connecting to the cluster"):
            connection = connect(Credentials(
                kubeconfig=inputs.kubeconfig, context=inputs.context, server=inputs.server, token=inputs.token,
                certificate_authority_data=inputs.certificate_authority_data,
                insecure_skip_tls_verify=inputs.insecure_skip_tls_verify, aws_role_arn=inputs.aws_role_arn,
                azure_client_id=inputs.azure_client_id, azure_tenant_id=inputs.azure_tenant_id,
                timeout=inputs.timeout), environ)
            gha.info(f"using {connection.source}: {connection.server}")
            if not inputs.namespace:  # as kubectl: the context's namespace, else default
                inputs = dataclasses.replace(inputs, namespace=connection.namespace or "default")
                gha.info(f"namespace {inputs.namespace} ("
                         f"{'from the kubeconfig context' if connection.namespace else 'the default'})")
        workspace = environ.get("GITHUB_WORKSPACE") or os.getcwd()
        # bounds every request of the step, counted from its start (connecting included)
        api = Api(connection.api_client, timeout=inputs.timeout, started=started)
        ctx = Context(
            api=api, github=GitHubContext.from_env(environ),
            ledger=ConfigMapLedger(api, inputs.namespace) if inputs.ledger else None,
            releases=_releases(inputs, environ, api),
            deployments=_deployments(inputs, environ, connection.server, api),
            manifest_loader=lambda given: manifests.load(given.manifests, workspace),
            leases=Leases(api, inputs.namespace, RunIdentity.from_env(environ)), cancellation=cancellation,
            cluster=urlsplit(connection.server).netloc or None)
        with cancellation.installed():
            report = execute(inputs, ctx)
    except ClusterConfigError as err:
        gha.error(err.message, title=f"Invalid input: {err.input_name}")
        report = _failed_report(inputs, err.message)
        code = EXIT_FAILED
    except RunError as err:
        gha.error(gha.escape_log(err.message), title=f"Invalid input: {err.input_name}" if err.input_name else None)
        report = _failed_report(inputs, err.message, err)
        code = EXIT_FAILED
    except WorkloadError as err:
        gha.error(gha.escape_log(str(err)))
        report = _failed_report(inputs, str(err), err)
        code = EXIT_FAILED
    except ApiFailure as err:
        said = f"the Kubernetes API answered {err.status} {err.reason}: " if err.status else ""
        gha.error(gha.escape_log(f"{said}{err.message}{_api_hint(err)}"))
        report = _failed_report(inputs, err.message, err)
        code = EXIT_FAILED
    except Cancelled as err:  # a signal outside a run's own handling (e.g. while connecting): nothing changed
        gha.error(gha.escape_log(f"{err}; nothing was changed"))
        report = replace(_failed_report(inputs, f"{err}; nothing was changed"), cancelled=True)
        code = EXIT_FAILED
    except Exception as err:  # a bug: say so plainly, keep the traceback out of the way, still write outputs
        with gha.group("Traceback (please include it in a bug report)"):
            gha.info(gha.escape_log(traceback.format_exc()))
        gha.error(gha.escape_log(f"unexpected {type(err).__name__}: {err}. This is a bug in "
                                 f"kube-release-rollback; the traceback is in the group above"))
        report = _failed_report(inputs, f"unexpected {type(err).__name__}: {err}")
        code = EXIT_FAILED
    if report is not None:
        if report.error and code == EXIT_OK:
            if not _diagnosed(report):  # else each failed workload already has its one ::error:: with the why
                gha.error(gha.escape_log(report.error))
            restored = report.rolled_back and report.failed_release is not None  # a failed deploy put back
            code = EXIT_RESTORED if restored or _all_compensated(report) else EXIT_FAILED
        values = outputs(report)
        for name, value in values.items():
            gha.set_output(name, value, environ=environ)
        gha.append_summary(summary_markdown(report), environ=environ)
        if not gha.is_actions(environ):
            _print_outputs(values)
    gha.debug(f"finished in {time.monotonic() - started:.2f}s with exit code {code}")
    return code


def _releases(inputs: Inputs, environ: Mapping[str, str], cluster_api: Api) -> GitHubReleases | None:
    """GitHub Releases of GITHUB_REPOSITORY (GITHUB_API_URL: GitHub Enterprise works), when a token is given;
    its requests share the step's timeout with the cluster's (``cluster_api``)."""
    from .github.releases import GitHubReleases

    if not inputs.github_token:
        return None
    if not environ.get("GITHUB_REPOSITORY"):
        gha.notice("github-token is set but GITHUB_REPOSITORY is not: GitHub Releases are not checked or marked")
        return None
    return GitHubReleases.from_env(environ, inputs.github_token, remaining=cluster_api.remaining)


def _deployments(inputs: Inputs, environ: Mapping[str, str], server: str, cluster_api: Api) -> Recorder | None:
    """GitHub Deployments of GITHUB_REPOSITORY in the environment (default: the namespace), when a token is
    given and github-deployments is true; its requests share the step's timeout with the cluster's."""
    from urllib.parse import urlsplit

    from .github.client import GitHubClient
    from .github.deployments import GitHubDeployments, Recorder, Target

    if not inputs.github_token or not inputs.github_deployments or not environ.get("GITHUB_REPOSITORY"):
        return None
    from .ledger import GitHubContext

    target = Target(environment=inputs.github_environment or inputs.namespace,
                    ref=inputs.ref or environ.get("GITHUB_SHA") or environ.get("GITHUB_REF_NAME") or "HEAD",
                    log_url=GitHubContext.from_env(environ).run_url, environment_url=inputs.environment_url,
                    production=inputs.production_environment)
    client = GitHubClient.from_env(environ, inputs.github_token, remaining=cluster_api.remaining)
    api = GitHubDeployments(client, environ["GITHUB_REPOSITORY"])
    payload = {"workloads": [str(w) for w in inputs.workloads], "namespace": inputs.namespace,
               "cluster": urlsplit(server).hostname or ""}
    return Recorder(api, target, payload)


def _failed_report(inputs: Inputs, message: str, err: BaseException | None = None) -> RunReport:
    # run.execute attaches where every workload is (``results``) to an error that stopped it before a change
    results = tuple(getattr(err, "results", ()) or ())
    return RunReport(mode=inputs.mode, decision=None, results=results, reason=inputs.reason, dry_run=inputs.dry_run,
                     rolled_back=False, failed_release=None, blocked_release=None, blocked=False,
                     last_successful_release=None, last_attempted_release=None, error=message,
                     release=inputs.release)


def _diagnosed(report: RunReport) -> bool:
    """Did every workload whose rollout failed get its ``::error::`` with a diagnosis while the run waited?"""
    failed = [r for r in report.results if r.failure_reason]
    return bool(failed) and all(r.diagnosis is not None for r in failed)


def _all_compensated(report: object) -> bool:
    results = getattr(report, "results", ())
    changed = [r for r in results if r.action in ("compensated", "failed")]
    return bool(changed) and all(r.action == "compensated" for r in changed)


def _api_hint(err: object) -> str:
    status = getattr(err, "status", 0)
    if status == 0 and getattr(err, "reason", "") == "Timeout":  # cluster.DeadlineExceeded: no answer in time
        return " (raise the timeout input if the API server is this slow)"
    if status == 0:
        return (" (check the server address in the kubeconfig and that the runner can reach it; a container "
                "action cannot reach the runner's 127.0.0.1)")
    if status == 401:
        return " (the credentials were rejected: check the kubeconfig or token input)"
    if status == 403:
        return " (the credentials lack a permission: see the README's RBAC section for the Role this needs)"
    return ""


def _mask_raw(values: Mapping[str, str]) -> None:
    """Mask secrets before anything else is printed. A multi-line kubeconfig is masked by its credential
    values after parsing (``secret_values``); masking its every line would hide lines like ``kind: Config``."""
    for name, value in values.items():
        value = value.strip()
        if value and (name != "kubeconfig" or "\n" not in value):
            gha.add_mask(value)


def _print_outputs(values: Mapping[str, str]) -> None:
    print("\nOutputs:")
    for name, value in values.items():
        print(f"  {name}={gha.escape_log(value)}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rollback",
        description="Deploy, roll back and calculate the deployment mode of Kubernetes workloads by release "
                    "(the kubernetes.io/change-cause annotation). Flags are the action's inputs.",
        epilog="Exit codes: 0 success (also skipped and dry runs), 1 failed, 2 failed and the previous release "
               "was restored. Credentials: --kubeconfig FILE, else KUBECONFIG, else in-cluster, else "
               "~/.kube/config; or --server with --token.",
    )
    parser.add_argument("--version", action="version", version=f"kube-release-rollback {__version__}")
    parser.add_argument("--release", help="release identifier (version, tag or SHA); rollback: empty = previous")
    parser.add_argument("--namespace", help="namespace (default: the kubeconfig context's, else default)")
    parser.add_argument("--deployment", action="append", metavar="[KIND/]NAME",
                        help="workload, repeatable: NAME, deployment/NAME, statefulset/NAME, daemonset/NAME")
    # no argparse choices: an unknown mode is reported like every other bad input (::error naming it, exit 1)
    parser.add_argument("--mode", metavar="{auto,calculate,deploy,rollback,history,unblock}",
                        help="what to do (default: auto)")
    parser.add_argument("--images", action="append", metavar="CONTAINER=IMAGE", help="deploy: image, repeatable")
    parser.add_argument("--manifests", action="append", metavar="GLOB", help="deploy: manifest files, repeatable")
    parser.add_argument("--kubeconfig", dest="kubeconfig_file", metavar="FILE", help="kubeconfig file to use")
    parser.add_argument("--context", help="kubeconfig context")
    parser.add_argument("--server", help="API server URL (with --token)")
    parser.add_argument("--token", help="bearer token (with --server)")
    parser.add_argument("--certificate-authority-data", help="base64 PEM CA for --server")
    parser.add_argument("--timeout", help="Go-style duration bounding the whole run (default 5m)")
    parser.add_argument("--reason", help="why: recorded with a rollback")
    parser.add_argument("--github-token", help="token to mark blocked GitHub Releases and record GitHub Deployments")
    parser.add_argument("--github-environment", help="GitHub Deployments environment (default: the namespace)")
    parser.add_argument("--ref", help="git ref of GitHub Deployments (default: GITHUB_SHA)")
    parser.add_argument("--environment-url", help="URL of the deployed environment, shown by GitHub")
    parser.add_argument("--aws-role-arn", help="EKS: IAM role to assume before minting the token")
    parser.add_argument("--azure-client-id", help="AKS: client ID of the workload identity app")
    parser.add_argument("--azure-tenant-id", help="AKS: tenant ID of the workload identity app")
    for name in BOOLEAN_INPUTS:
        dest = name.replace("-", "_")
        parser.add_argument(f"--{name}", dest=dest, action="store_true", default=None)
        parser.add_argument(f"--no-{name}", dest=dest, action="store_false")
    return parser


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
