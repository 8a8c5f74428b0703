"""The registry of this worker's live connections and their local group memberships."""

from __future__ import annotations

from typing import Any, Protocol

from panther_ws.hosting.types import Send


class Member(Protocol):
    """What the worker needs of a live connection (``GenericWebsocket`` is one).

    A Protocol, so the worker and its registry sit below the handler class and never
    import it: the handler calls down into the worker, the worker only calls these back.
    """

    connection_id: str | None
    is_connected: bool
    is_closed: bool
    asgi_send: Send  # a group send hands every member one prebuilt ASGI message

    async def send(self, data: Any = None) -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


class ConnectionRegistry:
    """Who is connected to this worker, and which of them are in which group.

    The worker asks it to ``forget`` a connection however the connection ended, so nothing
    leaks; group membership is kept per worker so that the broker only hears about a group
    when its first local member joins or its last one leaves.
    """

    def __init__(self) -> None:
        self._connections: dict[str, Member] = {}
        self._groups: dict[str, dict[str, Member]] = {}
        self._memberships: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._connections)

    def __contains__(self, connection_id: object) -> bool:
        return connection_id in self._connections

    def get(self, connection_id: str) -> Member | None:
        return self._connections.get(connection_id)

    def connections(self) -> list[Member]:
        return list(self._connections.values())

    def register(self, connection_id: str, connection: Member) -> None:
        self._connections[connection_id] = connection

    def join(self, connection_id: str, group: str) -> bool:
        """Add a registered connection to ``group``; True if it is the group's first member
        on this worker."""
        connection = self._connections.get(connection_id)
        if connection is None:
            raise KeyError(f"connection {connection_id!r} is not registered on this worker")
        members = self._groups.setdefault(group, {})
        first = not members
        members[connection_id] = connection
        self._memberships.setdefault(connection_id, set()).add(group)
        return first

    def leave(self, connection_id: str, group: str) -> bool:
        """Remove from ``group``; True if the group has no member left on this worker."""
        members = self._groups.get(group)
        if members is None or members.pop(connection_id, None) is None:
            return False
        self._memberships.get(connection_id, set()).discard(group)
        if members:
            return False
        del self._groups[group]
        return True

    def members(self, group: str) -> list[Member]:
        return list(self._groups.get(group, {}).values())

    def forget(self, connection_id: str) -> list[str]:
        """Drop a connection; returns the groups it left empty on this worker."""
        self._connections.pop(connection_id, None)
        return [
            group
            for group in tuple(self._memberships.pop(connection_id, ()))
            if self.leave(connection_id, group)
        ]

    def group_members_count(self) -> int:
        return sum(len(members) for members in self._groups.values())
