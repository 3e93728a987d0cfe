"""Spin's MySQL interface: which dependency an address names, and rows as rdbms-types values."""

from __future__ import annotations

import datetime
import decimal

import pytest
from pymysql.constants import FIELD_TYPE

from shoal_agent.capabilities.bindings import AppBinding
from shoal_agent.capabilities.namespacing import KeySpace
from shoal_agent.capabilities.pools import HostPort, MysqlTarget
from shoal_agent.capabilities.spin_mysql import column_type, mysql_dependency, row_set

DB = MysqlTarget(HostPort("10.0.0.3", 3306), "u", "pw", "shop")


def binding(**mysql: MysqlTarget) -> AppBinding:
    return AppBinding(KeySpace("ns", "app"), mysql=mysql)


def test_open_takes_only_a_declared_dependency_by_name() -> None:
    assert mysql_dependency(binding(db=DB), "mysql://db") == "db"
    assert mysql_dependency(binding(db=DB), "mysql://user:pw@db:3306/other") == "db"
    for address in ("mysql://10.0.0.3:3306/shop", "mysql://orders", "postgres://db", "db"):
        with pytest.raises(LookupError, match=r"not mysql://<dependency> of a declared MySQL dep\w+ \(db\)"):
            mysql_dependency(binding(db=DB), address)
    with pytest.raises(LookupError, match=r"\(none\)"):
        mysql_dependency(binding(), "mysql://db")


def test_column_types_follow_the_mysql_type_and_text_or_bytes_by_value() -> None:
    assert column_type(FIELD_TYPE.LONGLONG, [3]) == "int64"
    assert column_type(FIELD_TYPE.TINY, [1]) == "int8"
    assert column_type(FIELD_TYPE.DOUBLE, [1.5]) == "floating64"
    assert column_type(FIELD_TYPE.VAR_STRING, ["a", None]) == "str"
    assert column_type(FIELD_TYPE.BLOB, [None, b"\x00"]) == "binary"
    assert column_type(FIELD_TYPE.NEWDECIMAL, [decimal.Decimal("1.10")]) == "other"


def test_rows_keep_numbers_and_bytes_and_give_decimals_and_times_as_text() -> None:
    description = [("n", FIELD_TYPE.LONGLONG), ("price", FIELD_TYPE.NEWDECIMAL), ("at", FIELD_TYPE.DATETIME)]
    rows = [(2, decimal.Decimal("0.10"), datetime.datetime(2026, 1, 2, 3, 4, 5)), (None, None, None)]
    columns, values = row_set(description, rows)
    assert columns == [("n", "int64"), ("price", "other"), ("at", "other")]
    assert values == [[2, "0.10", "2026-01-02T03:04:05"], [None, None, None]]
