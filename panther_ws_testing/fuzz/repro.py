"""The smallest failing conversation as a pytest file a user pastes into the suite."""

from __future__ import annotations

from panther_ws_testing.fuzz.checks import allowing
from panther_ws_testing.fuzz.conversation import Conversation
from panther_ws_testing.fuzz.script import Script, importable_name

_BODY = " " * 12  # inside the test, the client and the stack


def render(conversation: Conversation, failure: BaseException) -> str:
    """The test file: the script's steps inside a client, on the conversation's backend."""
    try:
        return _render(conversation, failure)
    except ValueError as exc:  # something the test needs cannot be imported
        return f"# The failing conversation cannot be printed as a test: {exc}\n"


def _render(conversation: Conversation, failure: BaseException) -> str:
    spec, script = conversation.spec, conversation.script
    script.needs("panther_ws_testing", "WebsocketTestClient")
    setup = [f"{script.reference(spec.reset)}()"] if spec.reset is not None else []
    module, name = importable_name(spec.app)
    if spec.workers == 1:
        script.imports.add(f"from {module} import {name}" + ("" if name == "app" else " as app"))
    else:
        script.imports.add(f"from {module} import {name}")
        script.needs("panther_ws.brokers", "MemoryBroker")
        workers = [conversation.app_name(i) for i in range(spec.workers)]
        setup += [
            "broker = MemoryBroker()",
            f"{', '.join(workers)} = {', '.join(f'{name}(broker)' for _ in workers)}",
        ]
    options = ", ".join(f"{key}={value!r}" for key, value in conversation.client_options().items())
    clients = []
    for worker in range(spec.workers):
        served = conversation.app_name(worker)
        if spec.allowed_exceptions:
            allowed = ", ".join(_exception_name(script, e) for e in spec.allowed_exceptions)
            served = f"{script.reference(allowing)}({served}, {allowed})"
        clients.append(
            f"WebsocketTestClient({served}, {options}) as {conversation.client_name(worker)}"
        )
    summary = " ".join(f"{type(failure).__name__}: {failure}".split())[:150]
    lines = [
        f"# Found by panther_ws_testing.fuzz: {summary}",
        "from contextlib import AsyncExitStack",
        "",
        "import pytest",
        "",
        *_grouped(script.imports),
        "",
        "",
        "@pytest.fixture",
        "def anyio_backend():",
        f"    return {spec.backend!r}",
        "",
        "",
        "@pytest.mark.anyio",
        "async def test_conversation_found_by_fuzzing():",
        *(f"    {line}" for line in setup),
        f"    async with {', '.join(clients)}:",
        "        async with AsyncExitStack() as stack:",
        *(_BODY + line for line in script.body or ["pass"]),
        *(f"        {line}" for line in script.after),
    ]
    return "\n".join(lines) + "\n"


def _grouped(imports: set[str]) -> list[str]:
    """``from m import a`` and ``from m import b`` as ``from m import a, b``, sorted."""
    names: dict[str, list[str]] = {}
    for line in imports:
        module, _, name = line.removeprefix("from ").partition(" import ")
        names.setdefault(module, []).append(name)
    return [f"from {module} import {', '.join(sorted(names[module]))}" for module in sorted(names)]


def _exception_name(script: Script, exception: type[BaseException]) -> str:
    if exception.__module__ == "builtins":
        return exception.__name__
    return script.reference(exception)
