"""Host ABI v1 pieces without servers: error codes, result delivery, key namespacing, SQL binding."""

from __future__ import annotations

import datetime
import decimal
import json
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal_agent.capabilities import Err, KeySpace
from shoal_agent.capabilities.abi import (
    MAX_RESULT_BYTES,
    CapabilityError,
    deliver,
    guarded,
    take_error,
    take_result,
)
from shoal_agent.capabilities.namespacing import channel_name
from shoal_agent.capabilities.sql import bind_params, encode_rows, json_value, parse_params
from shoal_agent.runtime.hostfuncs import HostTrap
from shoal_agent.runtime.invocation import InvocationState, set_current

pytestmark = pytest.mark.unit


class FakeCall:
    """Guest memory as a bytearray, with HostCall's bounds checks."""

    def __init__(self, size: int = 4096) -> None:
        self.memory = bytearray(size)

    def read(self, ptr: int, length: int) -> bytes:
        if ptr + length > len(self.memory):
            raise HostTrap("outside guest memory")
        return bytes(self.memory[ptr : ptr + length])

    def write(self, ptr: int, data: bytes) -> None:
        if ptr + len(data) > len(self.memory):
            raise HostTrap("outside guest memory")
        self.memory[ptr : ptr + len(data)] = data


@pytest.fixture
def state() -> Iterator[InvocationState]:
    s = InvocationState(app=("ns", "app"))
    set_current(s)
    yield s
    set_current(None)


def test_error_codes_are_abi_v1() -> None:
    # Part of the ABI: changing any of these breaks compiled guests (guest/c/shoal.h, guest/go).
    assert {e.name: e.value for e in Err} == {
        "NOT_FOUND": -1,
        "NO_DEPENDENCY": -2,
        "UNAVAILABLE": -3,
        "TIMEOUT": -4,
        "INVALID": -5,
        "DENIED": -6,
        "REJECTED": -7,
        "TOO_LARGE": -8,
        "NO_RESULT": -9,
        "BUFFER_TOO_SMALL": -10,
        "INTERNAL": -11,
    }


def test_headers_match_error_codes() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "guest"
    header = (root / "c" / "shoal.h").read_text()
    go = (root / "go" / "shoal" / "abi.go").read_text()
    for e in Err:
        assert f"SHOAL_E{e.name} = {e.value}," in header
        assert f"Code = {e.value}\n" in go


def test_deliver_fits_or_stays_pending(state: InvocationState) -> None:
    call = FakeCall()
    assert deliver(call, b"hello", 100, 5) == 5  # type: ignore[arg-type]
    assert call.memory[100:105] == b"hello"
    assert take_result(call, 0, 100) == Err.NO_RESULT  # type: ignore[arg-type]
    assert deliver(call, b"too long", 200, 3) == 8  # type: ignore[arg-type]
    assert call.memory[200:208] == bytes(8)  # nothing written
    assert take_result(call, 200, 7) == Err.BUFFER_TOO_SMALL  # type: ignore[arg-type]
    assert take_result(call, 200, 8) == 8  # type: ignore[arg-type]
    assert call.memory[200:208] == b"too long"
    assert take_result(call, 200, 8) == Err.NO_RESULT  # type: ignore[arg-type]
    # A negative i32 capacity is a large unsigned one, not an error.
    assert deliver(call, b"x", 300, -1) == 1  # type: ignore[arg-type]
    with pytest.raises(CapabilityError) as info:
        deliver(call, b"x" * (MAX_RESULT_BYTES + 1), 0, 0)  # type: ignore[arg-type]
    assert info.value.code is Err.TOO_LARGE


def test_guarded_maps_failures_to_codes_and_keeps_the_message(state: InvocationState) -> None:
    call = FakeCall()

    def mapper(e: BaseException) -> CapabilityError | None:
        return CapabilityError(Err.UNAVAILABLE, "down") if isinstance(e, ConnectionError) else None

    @guarded("redis.get", mapper)
    def impl(_call: object, mode: int) -> int:
        if mode == 1:
            raise CapabilityError(Err.DENIED, "not yours")
        if mode == 2:
            raise ConnectionError("refused")
        if mode == 3:
            raise RuntimeError("bug")
        if mode == 4:
            raise HostTrap("bad pointer")
        return 7

    assert impl(call, 1) == Err.DENIED
    n = take_error(call, 0, 100)  # type: ignore[arg-type]
    assert call.memory[:n] == b"redis.get: not yours"
    assert take_error(call, 0, 5) == 5  # type: ignore[arg-type]  # truncated to the buffer
    assert impl(call, 2) == Err.UNAVAILABLE
    assert impl(call, 3) == Err.INTERNAL
    assert b"RuntimeError: bug" in state.extras["shoal.abi.error"]
    with pytest.raises(HostTrap):
        impl(call, 4)
    assert impl(call, 0) == 7
    assert take_error(call, 0, 100) == 0  # type: ignore[arg-type]  # success clears it


# --- namespacing --------------------------------------------------------------------------------


def test_keys_are_prefixed_per_app() -> None:
    ks = KeySpace("shop", "tally")
    assert ks.key(b"count", write=True) == b"shop/tally:count"
    assert ks.key(b"a:b/c@d", write=False) == b"shop/tally:a:b/c@d"
    assert ks.key(b"@tally/@x", write=True) == b"shop/tally:@x"  # own key starting with '@'
    assert ks.channel(b"clicks") == b"shop/clicks" and channel_name("shop", "clicks") == "shop/clicks"


def test_shared_keys_are_read_only_and_need_the_owners_consent() -> None:
    reader = KeySpace("shop", "leaderboard", shared_by=frozenset({"tally"}))
    assert reader.key(b"@tally/count", write=False) == b"shop/tally:count"
    for key, write in [(b"@tally/count", True), (b"@other/count", False)]:
        with pytest.raises(CapabilityError) as info:
            reader.key(key, write=write)
        assert info.value.code is Err.DENIED


@pytest.mark.parametrize(
    "key", [b"", b"@", b"@tally", b"@tally/", b"@Tally/k", b"@-x/k", b"@a b/k", b"x" * 4097]
)
def test_malformed_keys_are_invalid(key: bytes) -> None:
    with pytest.raises(CapabilityError) as info:
        KeySpace("shop", "tally", frozenset({"tally"})).key(key, write=False)
    assert info.value.code is Err.INVALID


@given(
    a=st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True),
    b=st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True),
    ka=st.binary(min_size=1, max_size=20).filter(lambda k: not k.startswith(b"@")),
    kb=st.binary(min_size=1, max_size=20).filter(lambda k: not k.startswith(b"@")),
)
def test_two_apps_never_share_a_redis_key(a: str, b: str, ka: bytes, kb: bytes) -> None:
    if a == b:
        return
    assert KeySpace("ns", a).key(ka, write=True) != KeySpace("ns", b).key(kb, write=True)


# --- SQL parameters and rows --------------------------------------------------------------------


def lit(value: object) -> str:
    return "NULL" if value is None else f"<{value}>"


def test_bind_params_skips_quotes_and_comments() -> None:
    sql = "SELECT ?, '?', \"?\", `?`, 'it''s ?', 'a\\'?' -- ?\n, ? # ?\n /* ? */ FROM t WHERE x = ?"
    assert bind_params(sql, [1, None, "z"], lit) == (
        "SELECT <1>, '?', \"?\", `?`, 'it''s ?', 'a\\'?' -- ?\n, NULL # ?\n /* ? */ FROM t WHERE x = <z>"
    )
    assert bind_params("SELECT 1--?", [2], lit) == "SELECT 1--<2>"  # "--" without a space: no comment


def test_bind_params_counts_must_match() -> None:
    for sql, params in [("SELECT ?", []), ("SELECT 1", [1]), ("SELECT ?, ?", [1])]:
        with pytest.raises(CapabilityError) as info:
            bind_params(sql, params, lit)
        assert info.value.code is Err.INVALID


@given(st.text().filter(lambda s: "?" not in s))
def test_bind_params_without_placeholders_is_identity(sql: str) -> None:
    assert bind_params(sql, [], lit) == sql


def test_parse_params() -> None:
    assert parse_params(b"") == [] and parse_params(b"  ") == []
    assert parse_params(b'[1, 2.5, "x", null, true]') == [1, 2.5, "x", None, True]
    for bad in [b"{}", b"[[1]]", b'[{"a":1}]', b"nope", b"\xff"]:
        with pytest.raises(CapabilityError) as info:
            parse_params(bad)
        assert info.value.code is Err.INVALID


def test_rows_as_json() -> None:
    assert json_value(decimal.Decimal("4.25")) == "4.25"
    assert json_value(datetime.datetime(2024, 5, 1, 12, 0, 1)) == "2024-05-01T12:00:01"
    assert json_value(datetime.date(2024, 5, 1)) == "2024-05-01"
    assert json_value(datetime.timedelta(hours=1, seconds=2)) == "1:00:02"
    assert json_value(b"\x00\xff") == "AP8="
    rows = encode_rows(["id", "name"], [(1, "Mochi"), (2, None)])
    assert json.loads(rows) == [{"id": 1, "name": "Mochi"}, {"id": 2, "name": None}]
    assert encode_rows(["é"], [("ü",)]) == '[{"é":"ü"}]'.encode()
