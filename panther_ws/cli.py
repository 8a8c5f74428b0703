"""The command line: ``panther-ws serve module:app`` and ``panther-ws connect URL``."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import anyio

from panther_ws.protocol import ProtocolError
from panther_ws.server import ServerConfig, serve
from panther_ws.session import WebsocketClosed, WebsocketError


def load_app(target: str) -> Any:
    """Import ``package.module:attribute``, with the current directory importable."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise SystemExit(f"error: app {target!r} must look like 'package.module:app'")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(f"error: cannot import {module_name!r}: {exc}") from exc
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise SystemExit(f"error: module {module_name!r} has no attribute {attribute!r}") from None


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    """An argparse type: a number above zero (a zero limit or interval is a typo)."""

    def parse(text: str) -> float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0, got {text!r}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its error: "invalid int value"
    return parse


# ServerConfig fields the command line sets; an option left out keeps ServerConfig's default.
_SERVER_LIMITS: dict[str, tuple[Callable[[str], float], str]] = {
    "max_message_size": (
        _positive(int),
        "largest message in bytes; a larger one closes with 1009 "
        "(default: the app's own max_message_size, else 1 MiB)",
    ),
    "max_connections": (
        _positive(int),
        "connections past their request at once; HTTP 503 beyond "
        f"(default: {ServerConfig.max_connections})",
    ),
    "max_handshakes": (
        _positive(int),
        "sockets still sending their request at once; beyond it the oldest is dropped "
        f"(default: {ServerConfig.max_handshakes})",
    ),
    "handshake_timeout": (
        _positive(float),
        "seconds a socket may take to send its upgrade request before it is dropped "
        f"(default: {ServerConfig.handshake_timeout:g})",
    ),
    "ping_interval": (_positive(float), "seconds between keepalive pings (default: no pings)"),
}


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)-9s %(message)s")
    app = load_app(args.app)
    given = {name: getattr(args, name) for name in _SERVER_LIMITS}
    options = {name: value for name, value in given.items() if value is not None}
    anyio.run(lambda: serve(app, args.host, args.port, **options), backend=args.backend)
    return 0


async def _print_messages(ws: Any, done: anyio.CancelScope) -> None:
    try:
        async for message in ws:
            text = message if isinstance(message, str) else f"<{len(message)} bytes> {message!r}"
            print(text, flush=True)
    except WebsocketClosed as closed:
        print(f"closed by the server: {closed.code} {closed.reason}", file=sys.stderr)
    done.cancel()


async def _connect(args: argparse.Namespace) -> int:
    from panther_ws.client import connect

    subprotocols = args.subprotocol or None
    try:
        async with (
            connect(args.url, subprotocols=subprotocols, timeout=None) as ws,
            anyio.create_task_group() as task_group,
        ):
            task_group.start_soon(_print_messages, ws, task_group.cancel_scope)
            async for line in anyio.wrap_file(sys.stdin):
                await ws.send(line.rstrip("\n"))
            # The printer still shows what arrives until the server answers our close.
            await ws.close(1000)
    except (WebsocketError, ProtocolError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="panther-ws", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve_parser = commands.add_parser("serve", help="run an ASGI app on the reference server")
    serve_parser.add_argument("app", help="the app to serve, as package.module:attribute")
    serve_parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve_parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    for name, (kind, text) in _SERVER_LIMITS.items():
        serve_parser.add_argument("--" + name.replace("_", "-"), type=kind, help=text)
    serve_parser.add_argument(
        "--backend", choices=["asyncio", "trio"], default="asyncio", help="event loop to run on"
    )
    serve_parser.add_argument(
        "--log-level", default="info", help="debug, info, warning or error (default: info)"
    )

    connect_parser = commands.add_parser(
        "connect", help="interactive client: stdin lines are sent, messages are printed"
    )
    connect_parser.add_argument("url", help="ws:// or wss:// URL")
    connect_parser.add_argument(
        "--subprotocol", action="append", help="subprotocol to offer (repeat for several)"
    )

    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    return anyio.run(_connect, args)


if __name__ == "__main__":
    sys.exit(main())
