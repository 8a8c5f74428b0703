"""``from panther_ws.server import serve``: the reference server, kept at its public path.

The server lives in :mod:`panther_ws.network.server`, beside everything else that owns a
socket; this module only keeps the documented import working.
"""

from panther_ws.network.server import Server, ServerConfig, serve

__all__ = ["Server", "ServerConfig", "serve"]
