"""``panther-ws fuzz module:app --path PATTERN``: fuzz an app's conversations from a shell.

Prints a summary and, when a conversation fails, the smallest one as a pytest test to paste
into the suite; the exit status is 1 then, so a CI step fails too.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from hypothesis import strategies as st

from panther_ws.hosting.loading import AppLoadError, load_app
from panther_ws_testing.fuzz import Endpoint, fuzz_app


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The ``fuzz`` command's arguments, on ``parser`` (a subcommand's) or a new one."""
    parser = parser or argparse.ArgumentParser(prog="panther-ws fuzz", description=__doc__)
    parser.add_argument("app", help="the app to fuzz, as package.module:attribute")
    parser.add_argument(
        "--path",
        action="append",
        required=True,
        help="an endpoint's URL pattern, e.g. '/ws/<room_id>/' (repeat for several)",
    )
    parser.add_argument("--max-examples", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    parser.add_argument(
        "--shrink-seconds", type=float, default=10.0, help="stop shrinking a failure after"
    )
    parser.add_argument(
        "--query",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a query parameter every connection sends (repeat for several)",
    )
    parser.add_argument(
        "--replies", action="store_true", help="every message must be answered within timeout"
    )
    parser.add_argument("--wire", action="store_true", help="send real frames through the core")
    parser.add_argument("--max-clients", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=1.0, help="bound of every wait (s)")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    return parser


def run(args: argparse.Namespace) -> int:
    try:
        app = load_app(args.app)
    except AppLoadError as exc:
        raise SystemExit(f"error: {exc}") from exc
    query = dict(_pair(item) for item in args.query)
    endpoints = [
        Endpoint(path, query_params=st.just(query), replies=args.replies) for path in args.path
    ]
    machine = fuzz_app(
        app,
        endpoints,
        wire=args.wire,
        max_clients=args.max_clients,
        timeout=args.timeout,
        backend=args.backend,
    )
    report = machine.run(
        max_examples=args.max_examples, seconds=args.seconds, shrink_seconds=args.shrink_seconds
    )
    print(report.summary())
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


def _pair(item: str) -> tuple[str, str]:
    name, separator, value = item.partition("=")
    if not separator or not name:
        raise SystemExit(f"error: --query takes NAME=VALUE, got {item!r}")
    return name, value


if __name__ == "__main__":
    sys.exit(main())
