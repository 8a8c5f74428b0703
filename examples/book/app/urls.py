from app.websockets import BookWebsocket

urls = {
    "ws/book/": BookWebsocket,
}
