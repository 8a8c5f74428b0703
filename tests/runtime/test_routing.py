from __future__ import annotations

import uuid

import pytest

from panther_ws import App, GenericWebsocket
from panther_ws.routing import Router, URLConfigurationError


class A(GenericWebsocket):
    async def connect(self, **kwargs: str) -> None:
        await self.accept()


class B(A):
    pass


def router(urls: dict[str, object]) -> Router:
    return Router(urls, endpoint_base=GenericWebsocket)


def test_variables_are_captured_and_slashes_do_not_matter() -> None:
    route = router({"ws/<user_id>/<room_id>/": A}).resolve("/ws/7/lobby")
    assert route is not None
    assert route.endpoint is A
    assert route.path_variables == {"user_id": "7", "room_id": "lobby"}


def test_static_segment_wins_over_a_variable() -> None:
    table = router({"ws/<name>/": A, "ws/me/": B})
    assert table.resolve("ws/me/").endpoint is B  # type: ignore[union-attr]
    assert table.resolve("ws/you/").endpoint is A  # type: ignore[union-attr]


def test_static_dead_end_falls_back_to_the_variable() -> None:
    table = router({"ws/me/profile/": B, "ws/<name>/x/": A})
    route = table.resolve("/ws/me/x/")
    assert route is not None
    assert (route.endpoint, route.path_variables) == (A, {"name": "me"})


def test_nested_tables_and_query_string() -> None:
    table = router({"ws": {"book/": A, "chat/": {"<room>/": B}}})
    assert table.resolve("/ws/book/?x=1").endpoint is A  # type: ignore[union-attr]
    assert table.resolve("/ws/chat/9/").path_variables == {"room": "9"}  # type: ignore[union-attr]
    assert table.resolve("/ws/chat/") is None


@pytest.mark.parametrize(
    ("urls", "message"),
    [
        ({"ws/<a>/": A, "ws/<b>/x/": B}, "two variables at one level"),
        ({"ws/bad path/": A}, "invalid segment 'bad path'"),
        ({"ws/x<y>/": A}, "invalid segment 'x<y>'"),
        ({"ws/": object}, "not a GenericWebsocket subclass"),
        ({"ws/": A, "/ws": B}, "defined twice"),
    ],
)
def test_bad_tables_fail_when_the_app_is_built(urls: dict[str, object], message: str) -> None:
    with pytest.raises(URLConfigurationError, match=message):
        App(urls)


def test_variable_missing_from_connect_fails_at_build_time() -> None:
    class Strict(GenericWebsocket):
        async def connect(self, user_id: int) -> None:
            await self.accept()

    with pytest.raises(URLConfigurationError, match="no parameter 'room'"):
        App({"ws/<user_id>/<room>/": Strict})


def test_connect_signature_converts_by_annotation() -> None:
    from panther_ws.converters import ConnectSignature, PathVariableError

    class Typed(GenericWebsocket):
        async def connect(  # type: ignore[override]
            self, n: int, f: float, flag: bool, u: uuid.UUID, name, **rest: str
        ) -> None: ...

    signature = ConnectSignature.of(Typed.connect)
    some_uuid = uuid.uuid4()
    converted = signature.convert(
        {"n": "3", "f": "1.5", "flag": "true", "u": str(some_uuid), "name": "x", "extra": "y"}
    )
    assert converted == {"n": 3, "f": 1.5, "flag": True, "u": some_uuid, "name": "x", "extra": "y"}
    assert signature.convert({"flag": "0"}) == {"flag": False}
    with pytest.raises(PathVariableError, match="'flag' is 'maybe', not a bool"):
        signature.convert({"flag": "maybe"})
