"""shoal: package Wasm modules as OCI artifacts and scaffold WasmApps for them.

shoal push app.wasm REGISTRY/REPO:TAG [--format cncf|spin|docker] [--plain-http]
shoal scaffold REGISTRY/REPO:TAG --name NAME [--replicas N] [--http-path /p | --job] [--no-resolve]

`push` writes a component's exports and imports (read with wasm-tools) into its CNCF config;
`scaffold` picks the trigger they support (wasi:http/incoming-handler: http, wasi:cli/run: a job)
unless --http-path or --job says otherwise.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from shoal_cli import push as push_cmd
from shoal_cli import scaffold as scaffold_cmd
from shoal_cli.errors import CliError
from shoal_cli.resolve import component_exports, resolve


def _plain_http(args: argparse.Namespace) -> bool | None:
    """--plain-http forces http; otherwise loopback registries use http and everything else https."""
    return True if args.plain_http else None


def cmd_push(args: argparse.Namespace) -> int:
    pushed = push_cmd.push(Path(args.module), args.reference, fmt=args.format, plain_http=_plain_http(args))
    print(pushed.digest)
    print(f"pushed {args.reference} ({args.format}) = {pushed.pinned}", file=sys.stderr)
    return 0


def cmd_scaffold(args: argparse.Namespace) -> int:
    ref: str = args.reference
    opts = scaffold_cmd.AppOptions(
        name=args.name or _default_name(ref),
        namespace=args.namespace,
        replicas=args.replicas,
        http_path=args.http_path,
        job=args.job,
        memory=args.memory,
        timeout=args.timeout,
    )
    if args.no_resolve:
        app = scaffold_cmd.build_app(ref, opts)
        comment = f"{ref} (tag not resolved: the operator resolves it when the app is applied)"
    else:
        digest = resolve(ref, plain_http=_plain_http(args))
        pinned = ref if "@" in ref else f"{push_cmd.repository_of(ref)}@{digest}"
        exports = None
        if not opts.job and not opts.http_path:  # no flag says: the component's exports do
            exports = component_exports(pinned, plain_http=_plain_http(args))
            opts = replace(opts, job=scaffold_cmd.is_job(exports))
        app = scaffold_cmd.build_app(pinned, opts, source=ref)
        comment = f"{ref}\n  resolves to {digest}"
        if exports is not None:
            comment += f"\n  a component exporting {', '.join(exports)}"
    print(scaffold_cmd.render(app, comment=comment), end="")
    return 0


def _default_name(ref: str) -> str:
    return push_cmd.repository_of(ref).rsplit("/", 1)[-1].lower()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="shoal", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)

    push = sub.add_parser(
        "push", help="package a .wasm file as an OCI artifact and push it; prints the digest"
    )
    push.add_argument("module", help="path to a .wasm file (a core module or a component)")
    push.add_argument("reference", help="REGISTRY/REPO:TAG")
    push.add_argument(
        "--format", choices=sorted(push_cmd.FORMATS), default="cncf", help="packaging (default: cncf)"
    )
    push.add_argument("--plain-http", action="store_true", help="talk http, not https (loopback always does)")
    push.set_defaults(run=cmd_push)

    sc = sub.add_parser("scaffold", help="print a WasmApp manifest for a pushed module")
    sc.add_argument("reference", help="REGISTRY/REPO:TAG or REGISTRY/REPO@sha256:...")
    sc.add_argument("--name", help="WasmApp name (default: the repository's last segment)")
    sc.add_argument("--namespace", help="metadata.namespace (default: none, i.e. kubectl's)")
    sc.add_argument("--replicas", type=int, default=1)
    trigger = sc.add_mutually_exclusive_group()
    trigger.add_argument(
        "--http-path",
        help="HTTP trigger path prefix (default: /<name>; a wasi:cli/run component defaults to --job)",
    )
    trigger.add_argument("--job", action="store_true", help="run to completion instead of serving HTTP")
    sc.add_argument("--memory", help="memory limit per instance, e.g. 64Mi")
    sc.add_argument("--timeout", help="time limit per invocation, e.g. 5s")
    sc.add_argument("--no-resolve", action="store_true", help="keep the tag; do not ask the registry")
    sc.add_argument("--plain-http", action="store_true", help="talk http, not https (loopback always does)")
    sc.set_defaults(run=cmd_scaffold)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except CliError as e:
        print(f"shoal: {' '.join(str(e).split())}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
