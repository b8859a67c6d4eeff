"""``python -m kubesim``: run the simulated API server until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from . import faults, serve
from .auth import Authenticators, AwsKey
from .knobs import Knobs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kubesim",
        description="kubesim: a simulated Kubernetes API server (deployments, replicasets, statefulsets, "
                    "daemonsets, controllerrevisions, pods, configmaps, secrets, horizontalpodautoscalers, "
                    "namespaces, events, leases) with simulated controllers, for tests and demos. It binds 127.0.0.1 "
                    "only and keeps everything in memory. It is a test double, not a cluster: nothing is scheduled "
                    "or run.")
    parser.add_argument("--port", type=int, default=0,
                        help="TCP port on 127.0.0.1 to listen on (default 0: pick a free port)")
    parser.add_argument("--kubeconfig-out", metavar="PATH",
                        help="write a kubeconfig for the server here (cluster, user and context named 'kubesim')")
    parser.add_argument("--time-scale", type=float, default=1.0, metavar="X",
                        help="simulated seconds per real second, e.g. 10 makes progress deadlines and readiness "
                             "delays pass ten times faster (default 1.0)")
    parser.add_argument("--ready-delay", type=float, default=None, metavar="S",
                        help=f"simulated seconds from pod creation until it becomes Ready (default "
                             f"{Knobs().ready_delay})")
    parser.add_argument("--bad-image", action="append", default=[], metavar="IMG",
                        help="an image reference whose pods never become Ready (repeatable); references containing "
                             "'broken' or 'does-not-exist' are always bad")
    parser.add_argument("--crash-image", action="append", default=[], metavar="IMG",
                        help="an image reference whose containers exit with code 1 each time they start and "
                             "crash-loop (repeatable); references containing 'crash' always do")
    parser.add_argument("--crash-limit", type=int, default=None, metavar="N",
                        help="crashing containers crash only on their first N starts, then keep running "
                             "(default: they crash forever)")
    parser.add_argument("--token", action="append", default=[], metavar="TOKEN",
                        help="turn on simulated RBAC and accept this bearer token with full access as user "
                             "'kubesim-admin' (repeatable; requests without a known token get 401). The first token "
                             "is written into the kubeconfig. kubectl sends tokens to https servers only, so "
                             "combine it with --tls")
    parser.add_argument("--latency", type=float, default=0.0, metavar="S",
                        help="real seconds to wait before answering every request (default 0)")
    parser.add_argument("--fault", action="append", default=[], metavar="SPEC", help=faults.HELP)
    parser.add_argument("--bad-marker", action="append", default=[], metavar="TEXT",
                        help="image references containing TEXT never become Ready (repeatable; added to "
                             "'broken' and 'does-not-exist')")
    parser.add_argument("--crash-marker", action="append", default=[], metavar="TEXT",
                        help="image references containing TEXT crash-loop (repeatable; added to 'crash')")
    parser.add_argument("--daemonset-nodes", type=int, default=None, metavar="N",
                        help=f"simulated nodes a DaemonSet schedules onto (default {Knobs().daemonset_nodes})")
    parser.add_argument("--no-controller-sync", dest="controller_sync", action="store_false",
                        help="answer writes before the controllers have reconciled them (by default a write is "
                             "answered after its controllers ran once, which keeps tests deterministic)")
    parser.add_argument("--tls", action="store_true",
                        help="serve HTTPS with a throwaway CA made by the openssl CLI; the kubeconfig carries the "
                             "CA as certificate-authority-data")
    parser.add_argument("--eks-cluster-id", metavar="NAME",
                        help="accept EKS bearer tokens (k8s-aws-v1.*) minted for this cluster name: kubesim "
                             "recomputes their SigV4 signature with the --aws-key secrets (turns authentication on)")
    parser.add_argument("--aws-key", action="append", default=[], metavar="ACCESS_KEY_ID:SECRET:USER",
                        help="an AWS access key whose EKS tokens authenticate as USER (repeatable)")
    parser.add_argument("--jwt-key", metavar="KEY",
                        help="accept HS256 JWT bearer tokens signed with KEY, as a fake cloud token endpoint "
                             "issues them; 'sub' is the user (turns authentication on)")
    parser.add_argument("--jwt-issuer", action="append", default=[], metavar="ISS",
                        help="with --jwt-key: accept only these 'iss' values (repeatable; default any)")
    parser.add_argument("--jwt-audience", action="append", default=[], metavar="AUD",
                        help="with --jwt-key: accept only tokens with one of these 'aud' values (repeatable; "
                             "default any)")
    return parser


def authenticators(args: argparse.Namespace) -> Authenticators | None:
    """The token authentication the flags ask for (None: off)."""
    if not args.eks_cluster_id and not args.jwt_key:
        return None
    keys = {}
    for given in args.aws_key:
        key_id, _, rest = given.partition(":")
        secret, _, user = rest.partition(":")
        if not (key_id and secret and user):
            raise SystemExit(f"--aws-key {key_id or given!r}: give ACCESS_KEY_ID:SECRET:USER")
        keys[key_id] = AwsKey(secret, user)
    return Authenticators(eks_cluster_id=args.eks_cluster_id, aws_keys=keys, jwt_key=args.jwt_key,
                          jwt_issuers=tuple(args.jwt_issuer), jwt_audiences=tuple(args.jwt_audience))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    knobs = Knobs(latency=args.latency)
    for spec in args.fault:
        try:
            faults.add(knobs, faults.parse_spec(spec))
        except faults.FaultError as err:
            parser.error(f"--fault: {err}")
    if args.ready_delay is not None:
        knobs.ready_delay = args.ready_delay
    knobs.bad_images.update(args.bad_image)
    knobs.crash_images.update(args.crash_image)
    knobs.crash_limit = args.crash_limit
    knobs.bad_markers = (*knobs.bad_markers, *args.bad_marker)
    knobs.crash_markers = (*knobs.crash_markers, *args.crash_marker)
    if args.daemonset_nodes is not None:
        knobs.daemonset_nodes = args.daemonset_nodes
    knobs.controller_sync = args.controller_sync
    for token in args.token:
        knobs.grant(token, "kubesim-admin")
    knobs.authn = authenticators(args)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with serve(port=args.port, knobs=knobs, time_scale=args.time_scale, kubeconfig_path=args.kubeconfig_out,
               tls=args.tls, token=args.token[0] if args.token else None) as sim:
        print(f"kubesim listening on {sim.url}", flush=True)
        if args.kubeconfig_out:
            print(f"kubeconfig written to {args.kubeconfig_out}", file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
