"""`shoal:sql`: query and execute on the app's MySQL dependencies (ABI v1, docs/host-abi.md).

Parameters are a JSON array bound to `?` placeholders by the host (each value escaped by the
connection as a SQL literal), so guests never build SQL from strings and the ABI does not depend
on a driver's placeholder style. Rows come back as a JSON array of objects keyed by column name.
Every call is its own autocommit statement: v1 has no transactions across calls.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
from collections.abc import Callable, Sequence
from typing import Any

import pymysql  # type: ignore[import-untyped, unused-ignore]  # add "pymysql.*" to mypy overrides

from ..runtime.hostfuncs import HostCall, HostFunction, ValKind
from .abi import CapabilityError, Err, deliver, guarded, read_text, take_error, take_result, write_i64s
from .bindings import Bindings
from .pools import MysqlPool, Pools, is_connection_error

CAPABILITY = "sql"
_I32: ValKind = "i32"
Literal = Callable[[Any], str]


def parse_params(raw: bytes) -> list[Any]:
    """The JSON array of scalars (null, bool, number, string); empty input means no parameters."""
    if not raw.strip():
        return []
    try:
        params = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as e:
        raise CapabilityError(Err.INVALID, f"params are not JSON: {e}") from None
    if not isinstance(params, list):
        raise CapabilityError(Err.INVALID, "params must be a JSON array")
    for i, value in enumerate(params):
        if value is not None and not isinstance(value, bool | int | float | str):
            raise CapabilityError(Err.INVALID, f"param {i} is not a scalar (null, bool, number, string)")
    return params


def bind_params(sql: str, params: Sequence[Any], literal: Literal) -> str:
    """Replace each `?` outside quotes and comments with `literal(param)`, in order."""
    out: list[str] = []
    used = 0
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"`":
            end = _quoted_end(sql, i)
            out.append(sql[i:end])
            i = end
            continue
        if c == "#" or (sql.startswith("--", i) and (i + 2 == n or sql[i + 2] in " \t\r\n")):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out.append(sql[i:end])
            i = end
            continue
        if c == "/" and sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(sql[i:end])
            i = end
            continue
        if c == "?":
            if used >= len(params):
                raise CapabilityError(Err.INVALID, f"more '?' placeholders than the {len(params)} params")
            out.append(literal(params[used]))
            used += 1
        else:
            out.append(c)
        i += 1
    if used != len(params):
        raise CapabilityError(Err.INVALID, f"{len(params)} params for {used} '?' placeholders")
    return "".join(out)


def _quoted_end(sql: str, start: int) -> int:
    """Index after the quoted token at `start` (backslash escapes; a doubled quote is two tokens)."""
    quote = sql[start]
    i = start + 1
    while i < len(sql):
        c = sql[i]
        if c == "\\" and quote != "`":
            i += 2
            continue
        if c == quote:
            return i + 1
        i += 1
    return len(sql)


def json_value(value: Any) -> Any:
    """A column value as JSON: DECIMAL as a string (no float rounding), temporals as ISO 8601,
    binary as base64; numbers, strings and NULL as themselves."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    return str(value)


def encode_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    body = [{c: json_value(v) for c, v in zip(columns, row, strict=True)} for row in rows]
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def map_error(e: BaseException) -> CapabilityError | None:
    if isinstance(e, pymysql.err.MySQLError) and is_connection_error(e):
        timed_out = "timed out" in str(e) and e.args and e.args[0] != 2003
        return CapabilityError(Err.TIMEOUT if timed_out else Err.UNAVAILABLE, str(e))
    if isinstance(e, pymysql.err.MySQLError):
        return CapabilityError(Err.REJECTED, str(e))
    if isinstance(e, OSError):
        return CapabilityError(Err.UNAVAILABLE, str(e))
    return None


def functions(*, bindings: Bindings, pools: Pools) -> list[HostFunction]:
    """The `shoal:sql` host functions, resolving dependencies through `bindings`."""

    def target(call: HostCall, dep_ptr: int, dep_len: int) -> MysqlPool:
        binding = bindings.current()
        name = bindings.dependency_name(call.read(dep_ptr, dep_len))
        where = binding.mysql.get(name)
        if where is None:
            raise CapabilityError(Err.NO_DEPENDENCY, f"no mysql dependency named {name!r}")
        return pools.mysql(where)

    def statement(call: HostCall, sp: int, sl: int, pp: int, pl: int) -> tuple[str, list[Any]]:
        return read_text(call, sp, sl, "sql"), parse_params(call.read(pp, pl))

    def query(
        call: HostCall, dp: int, dl: int, sp: int, sl: int, pp: int, pl: int, out: int, cap: int
    ) -> int:
        pool = target(call, dp, dl)
        sql, params = statement(call, sp, sl, pp, pl)
        with pool.connection() as conn, conn.cursor() as cur:
            cur.execute(bind_params(sql, params, conn.escape))
            columns = [d[0] for d in cur.description or ()]
            rows = cur.fetchall() if columns else ()
        return deliver(call, encode_rows(columns, rows), out, cap)

    def execute(call: HostCall, dp: int, dl: int, sp: int, sl: int, pp: int, pl: int, out: int) -> int:
        pool = target(call, dp, dl)
        sql, params = statement(call, sp, sl, pp, pl)
        with pool.connection() as conn, conn.cursor() as cur:
            affected = cur.execute(bind_params(sql, params, conn.escape))
            last_id = cur.lastrowid or 0
        write_i64s(call, out, int(affected), int(last_id))
        return 0

    def fn(name: str, impl: Callable[..., int], params: tuple[ValKind, ...]) -> HostFunction:
        return HostFunction(
            CAPABILITY, name, params, (_I32,), guarded(f"{CAPABILITY}.{name}", map_error)(impl)
        )

    return [
        fn("query", query, (_I32,) * 8),
        fn("execute", execute, (_I32,) * 7),
        HostFunction(CAPABILITY, "result", (_I32, _I32), (_I32,), take_result),
        HostFunction(CAPABILITY, "last_error", (_I32, _I32), (_I32,), take_error),
    ]
