"""The BookWebsocket of Panther's WebSocket page, with panther_ws imports."""

from panther_ws import GenericWebsocket


class BookWebsocket(GenericWebsocket):
    async def connect(self):
        await self.accept()
        print(f"{self.connection_id=}")

    async def receive(self, data: str | bytes):
        # Just echo the message
        await self.send(data)
