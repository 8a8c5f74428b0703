"""One outcome per app behaviour, whoever hosts the app.

Each test runs one behaviour of :mod:`tests.hosting.apps` against every embedder of ours
(the test client direct and over the wire, the httpx transport, ``panther-ws serve`` over a
socket) and, where the wire fixes the answer, against uvicorn and hypercorn as real
processes too: what passes in memory passes on a server. Where real servers answer
differently, ``test_differences.py`` holds what each of them does.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest

from panther_ws_testing import AppCrashed
from tests.hosting import apps
from tests.hosting.embedders import (
    IN_MEMORY,
    ORACLES,
    OURS,
    UVICORN,
    Embedder,
    Outcome,
    Script,
    on,
)

pytestmark = [
    pytest.mark.anyio,
    # What the test client warns, and when, is test_differences.py's subject.
    pytest.mark.filterwarnings("ignore::panther_ws_testing._differences.ServerDifferenceWarning"),
]

EVERY_SERVER = (*OURS, *ORACLES)


def app_error(host: Embedder, outcome: Outcome) -> BaseException | None:
    """The app's exception as the test saw it; on a real server the test sees none."""
    if not host.in_memory:
        assert outcome.error is None, outcome.error
    return outcome.error


def refused_by_the_app(host: Embedder, outcome: Outcome, code: int, reason: Any) -> None:
    """The test client keeps the app's close code and reason; a wire client sees a bare 403."""
    assert outcome.status_code == 403
    assert not outcome.accepted
    if host.name in ("direct", "wire"):
        assert (outcome.rejection_code, outcome.rejection_reason) == (code, reason)


# -- the app ends the connection before accepting -------------------------------------------


@on(*EVERY_SERVER)
async def test_an_app_that_returns_before_accept_gets_http_500(host: Embedder) -> None:
    outcome = await host.run("/return-before-accept")
    assert outcome.status_code == 500
    assert app_error(host, outcome) is None


@on(*EVERY_SERVER)
async def test_an_app_that_raises_before_accept_gets_http_500(host: Embedder) -> None:
    outcome = await host.run("/raise-before-accept")
    assert outcome.status_code == 500
    if host.in_memory:
        assert type(outcome.error) is apps.HandlerError  # its own type, not a group


@on(*EVERY_SERVER)
async def test_a_close_before_accept_is_http_403_keeping_code_and_reason(host: Embedder) -> None:
    refused_by_the_app(host, await host.run("/reject"), 4001, "nope")


@on(*EVERY_SERVER)
async def test_a_close_before_accept_without_a_code_is_1000(host: Embedder) -> None:
    refused_by_the_app(host, await host.run("/reject-without-code"), 1000, "")


@on(*EVERY_SERVER)
async def test_a_close_before_accept_with_a_non_str_reason_is_http_403(host: Embedder) -> None:
    outcome = await host.run("/reject-with-list-reason")
    refused_by_the_app(host, outcome, 1008, [{"loc": ["token"]}])
    assert app_error(host, outcome) is None


@on(*EVERY_SERVER)
async def test_a_close_before_accept_no_frame_could_carry_is_http_403(host: Embedder) -> None:
    outcome = await host.run("/reject-with-unsendable-close")
    refused_by_the_app(host, outcome, 1006, apps.LONG_REASON)
    assert app_error(host, outcome) is None


@on(*EVERY_SERVER)
async def test_fastapis_query_validation_rejection_is_http_403_with_its_errors(
    host: Embedder,
) -> None:
    outcome = await host.run("/fastapi/items")
    assert outcome.status_code == 403
    assert app_error(host, outcome) is None
    if host.name in ("direct", "wire"):
        assert outcome.rejection_code == 1008
        (error,) = outcome.rejection_reason  # FastAPI's own validation errors, as sent
        assert error["loc"] == ["query", "token"]


@on(*EVERY_SERVER)
async def test_fastapi_accepts_a_valid_query(host: Embedder) -> None:
    outcome = await host.run("/fastapi/items", Script(query="token=7"))
    assert outcome.messages == ["token 7"]
    assert outcome.close_code == 1000


@on(*EVERY_SERVER)
async def test_a_denial_response_arrives_with_its_status_headers_and_body(host: Embedder) -> None:
    outcome = await host.run("/deny")
    assert outcome.status_code == 401
    assert outcome.headers["x-why"] == "token"
    assert outcome.body == apps.DENIAL_BODY
    assert outcome.rejection_code is None


@on(*EVERY_SERVER)
async def test_starlettes_websocket_exception_before_accept_is_http_403(host: Embedder) -> None:
    refused_by_the_app(host, await host.run("/starlette/refuse"), 4006, "not here")


# -- the handshake: subprotocols, headers, what the app sees ---------------------------------


@on(*EVERY_SERVER)
async def test_the_app_picks_one_of_the_offered_subprotocols(host: Embedder) -> None:
    outcome = await host.run("/subprotocol", Script(subprotocols=["a", "b"], receive=1))
    assert outcome.subprotocol == "b"
    assert outcome.messages == ['["a","b"]']


@on(*EVERY_SERVER)
async def test_no_subprotocol_offered_none_selected(host: Embedder) -> None:
    outcome = await host.run("/subprotocol", Script(receive=1))
    assert outcome.subprotocol is None
    assert outcome.messages == ["[]"]


@on(*EVERY_SERVER)
async def test_headers_given_with_accept_reach_the_client(host: Embedder) -> None:
    outcome = await host.run("/accept-headers", Script(receive=0))
    assert outcome.headers["x-answer"] == "42"
    assert outcome.headers["set-cookie"] == "session=abc"


@on(*EVERY_SERVER)
async def test_the_app_sees_the_path_query_and_headers_of_the_request(host: Embedder) -> None:
    script = Script(query="a=1&b=%20x", headers=[("X-Token", "secret")], receive=1)
    seen = orjson.loads((await host.run("/request", script)).messages[0])
    assert seen["type"] == "websocket"
    assert seen["scheme"] == "ws"
    assert seen["path"] == seen["raw_path"] == "/request"
    assert seen["query_string"] == "a=1&b=%20x"
    assert seen["x-token"] == "secret"


@on("direct", "wire", "serve", *ORACLES)  # the httpx transport runs no lifespan, as httpx's
async def test_the_lifespan_state_reaches_every_connection_scope(host: Embedder) -> None:
    seen = orjson.loads((await host.run("/request", Script(receive=1))).messages[0])
    assert seen["state"] == {"db": "ready"}


@on(*EVERY_SERVER)
async def test_a_starlette_endpoint_runs_as_written(host: Embedder) -> None:
    outcome = await host.run("/starlette/echo", Script(subprotocols=["chat"], send=["x"]))
    assert outcome.subprotocol == "chat"
    assert outcome.messages == ["starlette: x"]
    assert (outcome.close_code, outcome.close_reason) == (4005, "bye")


# -- closes after accept --------------------------------------------------------------------


@on(*EVERY_SERVER)
async def test_the_apps_close_code_and_reason_arrive_as_sent(host: Embedder) -> None:
    outcome = await host.run("/close-after-accept")
    assert (outcome.close_code, outcome.close_reason) == (4001, "kicked")


@on(*EVERY_SERVER)
async def test_a_close_without_a_code_is_1000(host: Embedder) -> None:
    outcome = await host.run("/close-without-code")
    assert outcome.close_code == 1000


@on(*EVERY_SERVER)
async def test_messages_both_ways_then_the_clients_close(host: Embedder) -> None:
    outcome = await host.run(
        "/echo", Script(send=["text", b"\x00bytes"], receive=2, close=(4010, "client bye"))
    )
    assert outcome.messages == ["text", b"\x00bytes"]
    assert app_error(host, outcome) is None


@on(*OURS, *UVICORN)  # hypercorn tells the app 1006: see test_differences.py
async def test_the_app_sees_the_clients_close_code_and_reason(host: Embedder) -> None:
    key = uuid.uuid4().hex
    await host.run("/record-disconnect", Script(query=key, close=(4011, "client bye")))
    outcome = await host.run("/seen", Script(query=key, receive=1))
    assert orjson.loads(outcome.messages[0]) == [4011, "client bye"]


# -- the app ends the connection while it is open: one policy, ours everywhere ----------------


@on(*OURS)
async def test_an_app_that_returns_while_open_closes_with_1000(host: Embedder) -> None:
    outcome = await host.run("/return-while-open")
    assert (outcome.close_code, outcome.close_reason) == (1000, "")
    assert app_error(host, outcome) is None


@on(*OURS)
async def test_what_an_app_sent_before_returning_arrives_then_1000(host: Embedder) -> None:
    outcome = await host.run("/send-then-return")
    assert outcome.messages == ["hi"]
    assert outcome.close_code == 1000


@on(*OURS)
async def test_an_app_that_raises_after_accept_closes_with_1011(host: Embedder) -> None:
    outcome = await host.run("/raise-after-accept", Script(send=["go"]))
    assert outcome.messages == ["hi"]
    assert outcome.close_code == 1011
    if host.in_memory:
        assert type(outcome.error) is apps.HandlerError  # its own type, not a group


@on(*OURS)
async def test_a_bare_cancelled_error_in_the_handler_closes_with_1011(host: Embedder) -> None:
    outcome = await host.run("/cancelled-after-accept", Script(send=["go"]))
    assert outcome.close_code == 1011
    if host.in_memory:  # a CancelledError escaping would cancel the test: it is wrapped
        assert type(outcome.error) is AppCrashed


@on(*OURS)
async def test_a_base_exception_in_the_handler_closes_with_1011_and_keeps_its_type(
    host: Embedder,
) -> None:
    outcome = await host.run("/interrupted-after-accept", Script(send=["go"]))
    assert outcome.close_code == 1011
    if host.in_memory:
        assert type(outcome.error) is apps.Interrupted


@on("serve", *ORACLES)
async def test_an_exception_of_any_kind_ends_only_its_own_connection(host: Embedder) -> None:
    for path in ("/raise-after-accept", "/cancelled-after-accept", "/interrupted-after-accept"):
        await host.run(path, Script(send=["go"]))
    outcome = await host.run("/echo", Script(send=["still serving"], receive=1))
    assert outcome.messages == ["still serving"]


@on(*IN_MEMORY)
async def test_in_memory_a_non_str_close_reason_after_accept_is_the_apps_error(
    host: Embedder,
) -> None:
    # Real servers break here (panther-ws serve 1011, uvicorn and hypercorn drop the socket),
    # so the harness is strict: the test fails with the violation named.
    outcome = await host.run("/close-with-list-reason")
    assert type(outcome.error).__name__ == "ASGIProtocolError"
    assert "reason of type list" in str(outcome.error)


@on(*IN_MEMORY)
async def test_in_memory_a_close_reason_over_123_bytes_is_the_apps_error(host: Embedder) -> None:
    outcome = await host.run("/close-with-long-reason")
    assert type(outcome.error).__name__ == "ASGIProtocolError"
    assert "124 UTF-8 bytes" in str(outcome.error)


@on(*OURS)
async def test_a_send_after_the_apps_close_raises_in_the_app_after_the_close_arrived(
    host: Embedder,
) -> None:
    key = uuid.uuid4().hex
    outcome = await host.run("/send-after-close", Script(query=key))
    assert (outcome.close_code, outcome.close_reason) == (4004, "done")
    if host.in_memory:
        assert type(outcome.error).__name__ == "ASGIProtocolError"
    seen = await host.run("/seen", Script(query=key, receive=1))
    assert orjson.loads(seen.messages[0]) == "ASGIProtocolError"  # what the app's send raised
