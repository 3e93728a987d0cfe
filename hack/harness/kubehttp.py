"""A tiny synchronous JSON client for test threads, authenticated as the control plane's admin."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from localcluster.controlplane import ControlPlane


class KubeHttp:
    def __init__(self, plane: ControlPlane) -> None:
        self.server = plane.server
        self.ctx = plane.ssl_context()

    def request(
        self, method: str, path: str, body: Any = None, *, content_type: str = "application/json"
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Content-Type", content_type)
        req.add_header("Accept", "application/json")
        with urllib.request.urlopen(req, context=self.ctx, timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def exists(self, path: str) -> bool:
        try:
            self.get(path)
            return True
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return False
            raise

    def apply(self, path: str, body: dict[str, Any]) -> Any:
        """Server-side apply as field manager `shoal-tests`."""
        return self.request(
            "PATCH",
            f"{path}?fieldManager=shoal-tests&force=true",
            body,
            content_type="application/apply-patch+yaml",
        )

    def merge_patch(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("PATCH", path, body, content_type="application/merge-patch+json")

    def delete(self, path: str) -> None:
        try:
            self.request("DELETE", path)
        except urllib.error.HTTPError as e:
            if e.code != 404:
                raise
