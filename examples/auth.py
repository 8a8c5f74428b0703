"""Authentication with a token in the query string, and a permission on the user."""

from __future__ import annotations

from dataclasses import dataclass

from panther_ws import App, GenericWebsocket

TOKENS = {"s3cret": "alice", "guest": "bob"}


@dataclass
class User:
    name: str

    @property
    def is_admin(self) -> bool:
        return self.name == "alice"


async def query_token_auth(connection: GenericWebsocket) -> User:
    """Raising rejects the connection with 1008 and this message as the reason."""
    token = connection.query_params.get("token")
    if token not in TOKENS:
        raise ValueError("missing or unknown token")
    return User(TOKENS[token])


async def is_admin(connection: GenericWebsocket) -> bool:
    return bool(connection.user and connection.user.is_admin)


class ProfileWebsocket(GenericWebsocket):
    auth = query_token_auth

    async def connect(self) -> None:
        await self.accept()
        await self.send({"hello": self.user.name})


class AdminWebsocket(ProfileWebsocket):
    permissions = [is_admin]


app = App({"ws/profile/": ProfileWebsocket, "ws/admin/": AdminWebsocket})
