"""``from panther_ws.client import connect``: the network client, kept at its public path.

The client lives in :mod:`panther_ws.network.client`, beside everything else that owns a
socket; this module only keeps the documented import working.
"""

from panther_ws.network.client import ClientSession, Connecting, connect

__all__ = ["ClientSession", "Connecting", "connect"]
