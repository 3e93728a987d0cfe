"""A Spin HTTP app in Python (spin-sdk 3.4.1 + componentize-py 0.17.2) on Spin's MySQL interface:
`/visit` inserts a row for its path into the app's MySQL dependency `db` (`mysql://db`) and reads
the count back with a parameterized query; `/undeclared` opens an address that names no declared
dependency and shows the error the host returns."""

from spin_sdk import http, mysql
from spin_sdk.http import Request, Response
from spin_sdk.wit.imports.rdbms_types import ParameterValue_Str
from spin_sdk.wit.types import Err


def text(body: str) -> Response:
    return Response(200, {"content-type": "text/plain"}, body.encode())


def visit(path: str) -> str:
    with mysql.open("mysql://db") as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS spin_visits (path VARCHAR(200) NOT NULL)", [])
        conn.execute("INSERT INTO spin_visits (path) VALUES (?)", [ParameterValue_Str(path)])
        count = "SELECT COUNT(*) AS n, MAX(path) AS last FROM spin_visits WHERE path = ?"
        rows = conn.query(count, [ParameterValue_Str(path)])
    (n, last), names = rows.rows[0], [f"{c.name}:{c.data_type.name.lower()}" for c in rows.columns]
    return f"visits {n.value} {last.value} {names}\n"


class IncomingHandler(http.IncomingHandler):
    def handle_request(self, request: Request) -> Response:
        if request.uri.endswith("/undeclared"):
            try:
                mysql.open("mysql://root:pw@127.0.0.1:3306/mysql")
            except Err as e:
                return text(f"refused {e.value}\n")
            return text("opened\n")
        return text(visit(request.uri))
