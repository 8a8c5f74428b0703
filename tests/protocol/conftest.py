"""The core tests' shared fixture: each masking path the core can take, one at a time."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from panther_ws.protocol import _framing
from tests.protocol.helpers import C_MASK


@pytest.fixture(params=["c", "python"])
def masking(request: pytest.FixtureRequest) -> Iterator[str]:
    """websockets' C masker, then wsproto's Python masking, for the test that asks for it."""
    if request.param == "c" and C_MASK is None:
        pytest.fail("websockets' C masker is missing; the dev extra installs websockets")
    saved = _framing.apply_mask
    _framing.apply_mask = C_MASK if request.param == "c" else None
    yield request.param
    _framing.apply_mask = saved
