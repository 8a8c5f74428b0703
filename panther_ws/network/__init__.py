"""Network: everything that owns a socket.

The reference server (:mod:`.server`), the client (:mod:`.client`), the asyncio stream they
read and write through, the shared writer and keepalive (:mod:`.pump`), plain HTTP for
non-websocket requests and the command line. Apps are hosted through
:mod:`panther_ws.hosting`; bytes are framed by :mod:`panther_ws.protocol`.
"""
