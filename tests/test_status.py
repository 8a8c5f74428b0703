from __future__ import annotations

import pytest

from panther_ws import status


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1011, 1014, 3000, 4999])
def test_codes_an_endpoint_may_send(code: int) -> None:
    assert status.is_sendable_close_code(code)


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000])
def test_codes_an_endpoint_may_not_send(code: int) -> None:
    assert not status.is_sendable_close_code(code)


def test_constants_use_panthers_names() -> None:
    assert status.WS_1000_NORMAL_CLOSURE == 1000
    assert status.WS_1008_POLICY_VIOLATION == 1008
    assert status.WS_1011_INTERNAL_ERROR == 1011
    assert status.WS_1015_TLS_HANDSHAKE == 1015
