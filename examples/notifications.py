"""An HTTP endpoint (Starlette, through ``fallback``) pushes to a websocket by connection_id.

The websocket tells the client its connection_id; any HTTP client can then
``POST /notify/<connection_id>`` with a JSON body that is pushed to that connection.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from panther_ws import App, GenericWebsocket, send_message_to_websocket


class NotificationsWebsocket(GenericWebsocket):
    async def connect(self) -> None:
        await self.accept()
        await self.send({"connection_id": self.connection_id})


async def notify(request: Request) -> JSONResponse:
    delivered = await send_message_to_websocket(
        request.path_params["connection_id"], await request.json()
    )
    return JSONResponse({"delivered": delivered}, status_code=200 if delivered else 404)


http_app = Starlette(routes=[Route("/notify/{connection_id}", notify, methods=["POST"])])
app = App({"ws/notifications/": NotificationsWebsocket}, fallback=http_app)
