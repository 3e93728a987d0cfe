"""Spin's `fermyon:spin/mysql@2.0.0` for Spin apps (components), served by the app's MySQL
dependencies through the same pools as `shoal:sql`.

`open` takes `mysql://<dependency>`: only a declared MySQL dependency, by name (the agent knows
where it is, its database and its credentials; user, password, port and path in the address are
ignored, a name that is not declared is refused: LookupError, connection-failed in the guest).
Parameters bind to `?` placeholders as in `shoal:sql`; a statement whose placeholders do not match
them is TypeError (bad-parameter). A broken or unreachable database is ConnectionError
(connection-failed); any other server error propagates (query-failed). Rows come back as
`(columns: [(name, type)], rows: [[value]])`, `type` a case of rdbms-types' `db-data-type`.
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import pymysql  # type: ignore[import-untyped, unused-ignore]  # add "pymysql.*" to mypy overrides
from pymysql.constants import FIELD_TYPE  # type: ignore[import-untyped, unused-ignore]

from .abi import CapabilityError, Err
from .bindings import AppBinding
from .pools import Pools, is_connection_error
from .sql import bind_params

Column = tuple[str, str]

# MySQL column types by the rdbms-types case their values take; the rest are `other` (DECIMAL,
# temporals: their text), and text and blob types are `str` or `binary` by what the driver returns.
_NUMERIC = {
    FIELD_TYPE.TINY: "int8",
    FIELD_TYPE.SHORT: "int16",
    FIELD_TYPE.YEAR: "int16",
    FIELD_TYPE.INT24: "int32",
    FIELD_TYPE.LONG: "int32",
    FIELD_TYPE.LONGLONG: "int64",
    FIELD_TYPE.FLOAT: "floating32",
    FIELD_TYPE.DOUBLE: "floating64",
}
_TEXT_OR_BYTES = {
    FIELD_TYPE.VARCHAR,
    FIELD_TYPE.VAR_STRING,
    FIELD_TYPE.STRING,
    FIELD_TYPE.JSON,
    FIELD_TYPE.ENUM,
    FIELD_TYPE.SET,
    FIELD_TYPE.TINY_BLOB,
    FIELD_TYPE.MEDIUM_BLOB,
    FIELD_TYPE.LONG_BLOB,
    FIELD_TYPE.BLOB,
    FIELD_TYPE.BIT,
}


def mysql_dependency(binding: AppBinding, address: str) -> str:
    """The MySQL dependency `mysql://<name>` names; LookupError for anything else."""
    parts = urlsplit(address)
    name = parts.hostname or ""
    if parts.scheme != "mysql" or name not in binding.mysql:
        declared = ", ".join(sorted(binding.mysql)) or "none"
        raise LookupError(
            f"{address!r} is not mysql://<dependency> of a declared MySQL dependency ({declared})"
        )
    return name


def column_type(type_code: int, values: Sequence[Any]) -> str:
    if type_code in _NUMERIC:
        return _NUMERIC[type_code]
    if type_code in _TEXT_OR_BYTES:
        return "binary" if any(isinstance(v, bytes | bytearray) for v in values) else "str"
    return "other"


def row_value(value: Any) -> Any:
    """A column value the data plane converts: numbers, strings, bytes and NULL as themselves,
    DECIMAL and temporals as their text (no float rounding)."""
    if value is None or isinstance(value, bool | int | float | str | bytes):
        return value
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, decimal.Decimal | datetime.timedelta):
        return str(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    return str(value)


def row_set(
    description: Sequence[Sequence[Any]], rows: Sequence[Sequence[Any]]
) -> tuple[list[Column], list[list[Any]]]:
    columns = [
        (str(d[0]), column_type(int(d[1]), [row[i] for row in rows])) for i, d in enumerate(description)
    ]
    return columns, [[row_value(v) for v in row] for row in rows]


@contextmanager
def guest_errors() -> Iterator[None]:
    """The error kinds the data plane tells apart, from the pool's and the driver's."""
    try:
        yield
    except CapabilityError as e:
        if e.code is Err.INVALID:
            raise TypeError(str(e)) from e
        if e.code in (Err.UNAVAILABLE, Err.TIMEOUT):
            raise ConnectionError(str(e)) from e
        raise
    except pymysql.err.MySQLError as e:
        if is_connection_error(e):
            raise ConnectionError(str(e)) from e
        raise RuntimeError(str(e)) from e
    except OSError as e:
        raise ConnectionError(str(e)) from e


def call(binding: AppBinding, pools: Pools, op: str, args: tuple[Any, ...]) -> Any:
    """One `mysql.*` operation of the Spin backend."""
    if op == "mysql.open":
        return mysql_dependency(binding, args[0])
    dependency, statement, params = args
    target = binding.mysql.get(dependency)
    if target is None:  # the app's dependencies changed while the guest held the connection
        raise LookupError(f"the app no longer declares MySQL dependency {dependency!r}")
    pool = pools.mysql(target)
    with guest_errors(), pool.connection() as conn, conn.cursor() as cur:
        cur.execute(bind_params(statement, list(params), conn.escape))
        if op == "mysql.execute":
            return None
        if op == "mysql.query":
            description = cur.description or ()
            return row_set(description, cur.fetchall() if description else ())
    raise ValueError(f"unknown Spin backend operation {op!r}")
