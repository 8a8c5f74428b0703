"""Hosting: what a server owes an ASGI app, written once for every embedder.

The reference server, the test client's links and the httpx transport differ only in where
outgoing bytes or events go; how an app is started, fed, listened to and judged when it
misbehaves lives here. This layer sits on :mod:`panther_ws.protocol` and below everything
that owns a socket (:mod:`panther_ws.network`).
"""
