"""The registry of this worker's live connections and their local group memberships."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from panther_ws.websocket import GenericWebsocket


class ConnectionRegistry:
    """Who is connected to this worker, and which of them are in which group.

    The App asks it to ``forget`` a connection however the connection ended, so nothing
    leaks; group membership is kept per worker so that the broker only hears about a group
    when its first local member joins or its last one leaves.
    """

    def __init__(self) -> None:
        self._connections: dict[str, GenericWebsocket] = {}
        self._groups: dict[str, dict[str, GenericWebsocket]] = {}
        self._memberships: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._connections)

    def __contains__(self, connection_id: object) -> bool:
        return connection_id in self._connections

    def get(self, connection_id: str) -> GenericWebsocket | None:
        return self._connections.get(connection_id)

    def connections(self) -> list[GenericWebsocket]:
        return list(self._connections.values())

    def register(self, connection: GenericWebsocket) -> None:
        self._connections[connection.connection_id] = connection  # type: ignore[index]

    def join(self, connection: GenericWebsocket, group: str) -> bool:
        """Add to ``group``; True if it is the group's first member on this worker."""
        members = self._groups.setdefault(group, {})
        first = not members
        members[connection.connection_id] = connection  # type: ignore[index]
        self._memberships.setdefault(connection.connection_id, set()).add(group)  # type: ignore[arg-type]
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

    def members(self, group: str) -> list[GenericWebsocket]:
        return list(self._groups.get(group, {}).values())

    def forget(self, connection_id: str) -> list[str]:
        """Drop a connection; returns the groups it left empty on this worker."""
        self._connections.pop(connection_id, None)
        emptied = [
            group
            for group in tuple(self._memberships.pop(connection_id, ()))
            if self.leave(connection_id, group)
        ]
        return emptied

    def group_members_count(self) -> int:
        return sum(len(members) for members in self._groups.values())
