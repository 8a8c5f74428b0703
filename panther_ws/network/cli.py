"""The command line: ``panther-ws serve module:app``, ``demo``, ``connect URL``, plugins."""

from __future__ import annotations

import argparse
import logging
import ssl
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import anyio

from panther_ws.hosting.lifespan import LifespanError
from panther_ws.hosting.loading import AppLoadError
from panther_ws.hosting.loading import load_app as load_target
from panther_ws.network.server import ServerConfig, serve
from panther_ws.network.session import WebsocketClosed, WebsocketError
from panther_ws.protocol import ProtocolError


def load_app(target: str) -> Any:
    """The app ``target`` names, or exit with the reason it cannot be loaded."""
    try:
        return load_target(target)
    except AppLoadError as exc:
        raise SystemExit(f"error: {exc}") from exc


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
        "seconds a socket may take to send its request (TLS handshake included) before it "
        "is dropped "
        f"(default: {ServerConfig.handshake_timeout:g})",
    ),
    "max_body_size": (
        _positive(int),
        "largest plain HTTP request body in bytes; HTTP 413 beyond "
        f"(default: {ServerConfig.max_body_size})",
    ),
    "ping_interval": (_positive(float), "seconds between keepalive pings (default: no pings)"),
}


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)-9s %(message)s")
    app = load_app(args.app)
    given = {name: getattr(args, name) for name in _SERVER_LIMITS}
    options: dict[str, Any] = {name: value for name, value in given.items() if value is not None}
    if args.ssl_keyfile and not args.ssl_certfile:
        raise SystemExit("error: --ssl-keyfile needs --ssl-certfile")
    if args.ssl_certfile:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(args.ssl_certfile, args.ssl_keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise SystemExit(f"error: cannot load the TLS certificate: {exc}") from exc
        options["ssl"] = context
    options["lifespan"] = args.lifespan
    try:
        anyio.run(lambda: serve(app, args.host, args.port, **options), backend=args.backend)
    except LifespanError as exc:
        print(f"error: application startup failed: {exc}", file=sys.stderr)
        return 3  # as uvicorn exits
    except OSError as exc:  # the port is taken, the address is not ours
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


def _demo(args: argparse.Namespace) -> int:
    args.app = "panther_ws.demo:app"
    print(f"the demo: open http://{args.host}:{args.port}/ in two browser tabs", flush=True)
    return _serve(args)


async def _print_messages(ws: Any, done: anyio.CancelScope) -> None:
    try:
        async for message in ws:
            text = message if isinstance(message, str) else f"<{len(message)} bytes> {message!r}"
            print(text, flush=True)
    except WebsocketClosed as closed:
        print(f"closed by the server: {closed.code} {closed.reason}", file=sys.stderr)
    done.cancel()


def _header(text: str) -> tuple[str, str]:
    """An argparse type: ``'Name: value'``, as curl's ``-H`` takes it."""
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not 'Name: value'")
    return name.strip(), value.strip()


def _client_ssl(args: argparse.Namespace) -> ssl.SSLContext | None:
    if args.insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if args.ssl_ca_certs:
        try:
            return ssl.create_default_context(cafile=args.ssl_ca_certs)
        except (OSError, ssl.SSLError) as exc:
            raise SystemExit(f"error: cannot load {args.ssl_ca_certs!r}: {exc}") from exc
    return None


async def _connect(args: argparse.Namespace) -> int:
    from panther_ws.network.client import connect

    try:
        async with (
            connect(
                args.url,
                headers=args.header or None,
                subprotocols=args.subprotocol or None,
                timeout=None,
                ssl=_client_ssl(args),
            ) as ws,
            anyio.create_task_group() as task_group,
        ):
            if ws.subprotocol is not None:
                print(f"connected, subprotocol {ws.subprotocol!r}", file=sys.stderr)
            task_group.start_soon(_print_messages, ws, task_group.cancel_scope)
            async for line in anyio.wrap_file(sys.stdin):
                await ws.send(line.rstrip("\n"))
            # The printer still shows what arrives until the server answers our close.
            await ws.close(1000)
    except (WebsocketError, ProtocolError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _add_server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    for name, (kind, text) in _SERVER_LIMITS.items():
        parser.add_argument("--" + name.replace("_", "-"), type=kind, help=text)
    parser.add_argument(
        "--ssl-certfile", metavar="FILE", help="TLS certificate (PEM): serve wss:// and https://"
    )
    parser.add_argument(
        "--ssl-keyfile", metavar="FILE", help="its private key (PEM), if not in the certfile"
    )
    parser.add_argument(
        "--lifespan",
        choices=["auto", "on", "off"],
        default="auto",
        help="run the app's lifespan: auto treats one that raises as unsupported, on "
        "requires it, off skips it (default: auto)",
    )
    parser.add_argument(
        "--backend",
        choices=["asyncio", "trio"],
        default="asyncio",
        help="event loop to run on (default: asyncio)",
    )
    parser.add_argument(
        "--log-level",
        type=str.lower,
        choices=["debug", "info", "warning", "error"],
        default="info",
        help="how much to log (default: info)",
    )


# Commands that other packages add (the test harness adds ``fuzz``): entry points in this
# group, each ``main(argv) -> int``. So the command line knows no higher layer, and a bare
# install without the testing extra still runs serve and connect.
PLUGIN_COMMANDS = "panther_ws.commands"


def _plugin_commands() -> dict[str, EntryPoint]:
    return {entry.name: entry for entry in entry_points(group=PLUGIN_COMMANDS)}


def _run_plugin(entry: EntryPoint, argv: list[str]) -> int:
    try:
        command = entry.load()
    except ImportError as exc:
        print(f"error: panther-ws {entry.name} cannot start: {exc}", file=sys.stderr)
        print("(it needs the testing extra: pip install 'panther-ws[testing]')", file=sys.stderr)
        return 2
    return int(command(argv))


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    plugins = _plugin_commands()
    if arguments and arguments[0] in plugins:
        return _run_plugin(plugins[arguments[0]], arguments[1:])
    parser = argparse.ArgumentParser(prog="panther-ws", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in plugins:
        commands.add_parser(name, add_help=False, help=f"see panther-ws {name} --help")

    serve_parser = commands.add_parser(
        "serve",
        help="run an ASGI app on the reference server",
        description="Run an ASGI app (websockets and plain HTTP) on the reference server.",
    )
    serve_parser.add_argument("app", help="the app to serve, as package.module:attribute")
    _add_server_options(serve_parser)

    demo_parser = commands.add_parser(
        "demo",
        help="serve the built-in demo: an echo and a chat room, with a page at /",
        description="Serve panther_ws.demo:app: open http://HOST:PORT/ in a browser.",
    )
    _add_server_options(demo_parser)

    connect_parser = commands.add_parser(
        "connect",
        help="interactive client: stdin lines are sent, messages are printed",
        description="Lines from stdin are sent as text messages; messages received are "
        "printed; EOF closes the connection.",
    )
    connect_parser.add_argument("url", help="ws:// or wss:// URL")
    connect_parser.add_argument(
        "-H",
        "--header",
        action="append",
        type=_header,
        metavar="'NAME: VALUE'",
        help="request header to send (repeat for several)",
    )
    connect_parser.add_argument(
        "--subprotocol", action="append", help="subprotocol to offer (repeat for several)"
    )
    connect_parser.add_argument(
        "--ssl-ca-certs", metavar="FILE", help="trust the certificates in FILE (PEM) for wss://"
    )
    connect_parser.add_argument(
        "--insecure", action="store_true", help="wss:// without checking the certificate"
    )

    args = parser.parse_args(arguments)
    if args.command == "serve":
        return _serve(args)
    if args.command == "demo":
        return _demo(args)
    return anyio.run(_connect, args)


if __name__ == "__main__":
    sys.exit(main())
