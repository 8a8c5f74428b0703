"""Panther-style WebSockets on a sans-IO core over wsproto."""

from panther_ws import status

__all__ = ["status"]
