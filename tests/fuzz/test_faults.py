"""Wire-mode faults: bytes cut at any byte, pings between fragments, drops in the middle of a
message, a client that stops reading; each played as the printed test writes it."""

from __future__ import annotations

import pytest
from hypothesis import settings

from panther_ws_testing.fuzz import DEFAULT_SETTINGS, ConnectRequest, Endpoint, fuzz_app
from panther_ws_testing.fuzz.conversation import (
    CallUserRule,
    Client,
    Conversation,
    Open,
    Receive,
    Send,
    Spec,
)
from panther_ws_testing.fuzz.faults import PauseReading, ResumeReading, SendRaw
from panther_ws_testing.session import MAX_UNREAD_BYTES
from panther_ws_testing.strategies import encode_frame
from tests.fuzz import apps

MASK = b"mask"
TEXT, CONTINUATION, PING = 0x1, 0x0, 0x9
BUDGET = settings(DEFAULT_SETTINGS, max_examples=40, stateful_step_count=8)


def one_client(app: object, *, replies: bool = False) -> tuple[Client, Spec]:
    """A client of ``app``'s ``/ws`` in wire mode, for a conversation written by hand."""
    spec = fuzz_app(app, [Endpoint("/ws", replies=replies)], wire=True).spec
    return Client(spec.endpoints[0], ConnectRequest("/ws"), worker=0), spec


@pytest.mark.anyio
async def test_a_message_cut_anywhere_with_a_ping_between_fragments_arrives_whole() -> None:
    client, spec = one_client(apps.recorder_app, replies=True)
    data = (
        encode_frame(TEXT, b"hel", fin=False, mask=MASK)
        + encode_frame(PING, b"?", mask=MASK)
        + encode_frame(CONTINUATION, b"lo", mask=MASK)
    )
    pieces = (data[:1], data[1:12], data[12:])
    steps = [Open(client), SendRaw(client, "hello", pieces), Receive(client)]
    conversation = Conversation(spec, steps, fragment_size=None)
    await conversation.play()

    assert conversation.script.body[1:] == [
        *(f"await ws1.send_raw({piece!r})" for piece in pieces),
        "await ws1.receive()",
    ]
    assert client.session is not None
    received = [m.get("text") for who, m in client.session.transcript if who == "app"]
    assert "hello" in received
    assert client.unanswered == 0


@pytest.mark.anyio
async def test_a_drop_in_the_middle_of_a_message_reaches_the_app_as_1006() -> None:
    apps.DISCONNECTS.clear()
    client, spec = one_client(apps.recorder_app)
    data = encode_frame(TEXT, b"hello", mask=MASK)
    steps = [Open(client), SendRaw(client, "hello", (data[:2], data[2:7]), then_drop=True)]
    conversation = Conversation(spec, steps, fragment_size=None)
    await conversation.play()

    assert apps.DISCONNECTS == [1006]
    assert conversation.script.body[-1].startswith("await ws1.drop()")


@pytest.mark.anyio
async def test_a_client_that_stops_reading_makes_the_app_wait() -> None:
    apps.FLOODED.clear()
    apps.FLOODED_SEEN.clear()
    client, spec = one_client(apps.flood_app)
    steps = [
        Open(client),
        PauseReading(client),
        CallUserRule(client, apps.flooded_so_far, {}),
        Send(client, "go"),
        CallUserRule(client, apps.flooded_so_far, {}),
        ResumeReading(client),
    ]
    conversation = Conversation(spec, steps, fragment_size=None)
    await conversation.play()  # the bound is checked after every step while paused

    before, paused = apps.FLOODED_SEEN
    assert before == 0
    assert 0 < paused <= MAX_UNREAD_BYTES + apps.FLOOD_CHUNK < apps.FLOOD_CHUNK * apps.FLOOD_CHUNKS
    assert "ws1.pause_reading()" in conversation.script.body
    assert "ws1.resume_reading()" in conversation.script.body


def test_the_machine_finds_a_leak_on_a_drop_in_wire_mode(anyio_backend: str) -> None:
    machine = fuzz_app(
        apps.leaky_app,
        ["/ws/rooms/<room>/"],
        wire=True,
        backend=anyio_backend,
        timeout=0.5,
        reset=apps.empty_rooms,
    )
    machine.at_rest(apps.rooms_are_empty)
    report = machine.run(settings=BUDGET, shrink_seconds=1.0)

    assert isinstance(report.failure, AssertionError), report.summary()
    assert report.repro is not None
    assert ".drop()" in report.repro


def test_a_flood_to_a_client_that_pauses_runs_clean(anyio_backend: str) -> None:
    machine = fuzz_app(apps.flood_app, ["/ws"], wire=True, backend=anyio_backend)
    report = machine.run(settings=settings(BUDGET, max_examples=15))
    assert report.ok, report.summary()
