"""Opaque expiring cursors and the limit parameter (agent.api.pagination)."""

from __future__ import annotations

import base64

import orjson
import pytest

from agent.api.errors import ApiError
from agent.api.pagination import PREFIX, decode, encode, parse_limit

NOW = 1_700_000_000.0


def _raw_cursor(obj: object) -> str:
    return PREFIX + base64.urlsafe_b64encode(orjson.dumps(obj)).decode().rstrip("=")


def _decode_error(kind: str, cursor: str, now: float = NOW) -> ApiError:
    with pytest.raises(ApiError) as info:
        decode(kind, cursor, now)
    return info.value


@pytest.mark.parametrize("seq", [0, 1, 42, 2**40])
def test_roundtrip(seq: int) -> None:
    cursor = encode("notifications", seq, NOW + 3600)
    assert cursor.startswith("cur_")
    assert decode("notifications", cursor, NOW) == seq


def test_cursor_is_url_safe_and_unpadded() -> None:
    cursor = encode("templates", 123456789, NOW + 86400)
    body = cursor[len(PREFIX):]
    assert "=" not in body and "+" not in body and "/" not in body


def test_valid_until_the_expiry_second() -> None:
    cursor = encode("notifications", 7, NOW)
    assert decode("notifications", cursor, NOW) == 7


def test_wrong_kind_is_invalid_cursor() -> None:
    err = _decode_error("templates", encode("notifications", 5, NOW + 60))
    assert (err.status, err.code, err.param) == (400, "invalid_cursor", "cursor")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "garbage",
        "cur_",
        "cur_!!!!",
        "cur_%%%",
        "cur_é",
        "cur_bm90IGpzb24",  # base64 of "not json"
        encode("notifications", 5, NOW + 60)[len(PREFIX):],  # valid body without the prefix
        "xyz_" + encode("notifications", 5, NOW + 60)[len(PREFIX):],
        _raw_cursor([1, 2, 3]),
        _raw_cursor({"k": "notifications", "e": int(NOW) + 60}),
        _raw_cursor({"k": "notifications", "s": "5", "e": int(NOW) + 60}),
    ],
)
def test_malformed_cursor_is_invalid_cursor(cursor: str) -> None:
    err = _decode_error("notifications", cursor)
    assert (err.status, err.code, err.param) == (400, "invalid_cursor", "cursor")


def test_expired_cursor_is_cursor_expired() -> None:
    cursor = encode("notifications", 5, NOW - 1)
    err = _decode_error("notifications", cursor)
    assert (err.status, err.code, err.param) == (400, "cursor_expired", "cursor")


def test_cursor_without_expiry_is_rejected() -> None:
    err = _decode_error("notifications", _raw_cursor({"k": "notifications", "s": 5}))
    assert err.status == 400
    assert err.code in {"invalid_cursor", "cursor_expired"}


def test_parse_limit_default() -> None:
    assert parse_limit({}) == 25


@pytest.mark.parametrize(("raw", "expected"), [("1", 1), ("25", 25), ("100", 100)])
def test_parse_limit_in_range(raw: str, expected: int) -> None:
    assert parse_limit({"limit": raw}) == expected


@pytest.mark.parametrize("raw", ["0", "101", "-1", "1000"])
def test_parse_limit_out_of_range_is_422(raw: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_limit({"limit": raw})
    assert (info.value.status, info.value.code, info.value.param) == (422, "invalid_value", "limit")


@pytest.mark.parametrize("raw", ["abc", "", "1.5", "ten"])
def test_parse_limit_not_an_integer_is_400(raw: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_limit({"limit": raw})
    assert (info.value.status, info.value.code, info.value.param) == (400, "invalid_type", "limit")
