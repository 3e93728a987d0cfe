"""Blocking registry calls through oras-py, one attempt each, with HTTP outcomes mapped to our errors.

oras-py's `Registry` does the protocol (URLs, upload sessions, bearer-token dance). Two of its defaults do
not suit a node agent, so this subclass changes them: `do_request` retries every failure internally with
sleeps of 3 s up to 80 s and sets no socket timeout, so we make one attempt with a timeout and leave retries
to `retry.RetryPolicy`; and its auth backend reads the node's own ~/.docker/config.json and cannot answer a
`Basic` challenge, so `_PullSecretAuth` uses only the imagePullSecret given and answers both schemes.
These calls block; async code runs them in a thread.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import oras.auth
import oras.provider
import requests

from . import mediatypes as mt
from .credentials import Credentials
from .errors import ArtifactNotFound, ArtifactTooLarge, OciError, RegistryUnavailable, Unauthorized
from .reference import Reference

_CHUNK = 1 << 16


class _PullSecretAuth(oras.auth.TokenAuth):  # type: ignore[misc]
    """Bearer tokens as oras-py does them, plus plain Basic (htpasswd), from explicit credentials only."""

    def __init__(self, credentials: Credentials | None) -> None:
        super().__init__()
        if credentials is not None:
            self._basic_auth = credentials.basic_token()

    def load_configs(self, container: Any, configs: list[str] | None = None) -> None:
        """Never read the node's docker config: only the Pod's imagePullSecrets may grant access."""

    def authenticate_request(
        self, original: requests.Response, headers: dict[str, str], refresh: bool = False
    ) -> tuple[dict[str, str], bool]:
        challenge = original.headers.get("Www-Authenticate", "")
        if challenge.lower().startswith("basic"):
            basic = getattr(self, "_basic_auth", None)
            if not basic:
                return headers, False
            return {**headers, "Authorization": f"Basic {basic}"}, True
        result: tuple[dict[str, str], bool] = super().authenticate_request(original, headers, refresh)
        return result


class _OneShotRegistry(oras.provider.Registry):  # type: ignore[misc]
    def __init__(self, host: str, *, insecure: bool, credentials: Credentials | None, timeout: float) -> None:
        super().__init__(hostname=host, insecure=insecure)
        auth = _PullSecretAuth(credentials)
        auth.session, auth.prefix, auth._tls_verify = self.session, self.prefix, True
        self.auth = auth
        self.timeout = timeout

    def do_request(
        self,
        url: str,
        method: str = "GET",
        data: Any = None,
        headers: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        headers = dict(headers or {})
        if self.auth.token is not None:
            headers.update(self.auth.get_auth_header())

        def send(h: dict[str, str]) -> requests.Response:
            try:
                sent: requests.Response = self.session.request(
                    method,
                    url,
                    data=data,
                    json=json,
                    headers=h,
                    stream=stream,
                    verify=self._tls_verify,
                    timeout=self.timeout,
                )
            except (requests.ConnectionError, requests.Timeout) as err:
                raise RegistryUnavailable(f"{method} {url}: {err}") from err
            return sent

        response = send(headers)
        if response.status_code not in (401, 403):
            return response
        try:
            headers, changed = self.auth.authenticate_request(response, headers)
        except requests.RequestException as err:
            raise RegistryUnavailable(f"token endpoint for {url}: {err}") from err
        if not changed:
            return response
        response.close()
        return send(headers)


def check_status(response: requests.Response, what: str) -> None:
    """2xx passes; everything else becomes the error the caller (and the retry policy) understands."""
    code = response.status_code
    if 200 <= code < 300:
        return
    detail = f"{what}: HTTP {code} {response.reason}"
    if code == 404:
        raise ArtifactNotFound(detail)
    if code in (401, 403):
        raise Unauthorized(detail)
    if code == 429 or code >= 500:
        raise RegistryUnavailable(detail)
    raise OciError(detail)


class RegistryClient:
    """One repository on one registry, with the credentials that apply to it."""

    def __init__(
        self,
        ref: Reference,
        *,
        plain_http: bool,
        credentials: Credentials | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.ref = ref
        self._oras = _OneShotRegistry(ref.host, insecure=plain_http, credentials=credentials, timeout=timeout)
        self._container = self._oras.get_container(f"{ref.host}/{ref.repository}")
        self._base = f"{self._oras.prefix}://"

    def _manifest_url(self, tag_or_digest: str) -> str:
        return self._base + str(self._container.manifest_url(tag_or_digest))

    def head_manifest(self, tag_or_digest: str) -> str | None:
        """The digest the registry reports for a tag (Docker-Content-Digest), if it reports one."""
        response = self._oras.do_request(
            self._manifest_url(tag_or_digest), "HEAD", headers={"Accept": ", ".join(mt.ACCEPT)}
        )
        check_status(response, f"manifest {self.ref.host}/{self.ref.repository}:{tag_or_digest}")
        digest = response.headers.get("Docker-Content-Digest")
        return digest or None

    def get_manifest(self, tag_or_digest: str, limit: int) -> tuple[bytes, str | None]:
        """Raw manifest bytes (digests are over bytes, never re-serialized JSON) and the Content-Type."""
        what = f"manifest {self.ref.host}/{self.ref.repository}@{tag_or_digest}"
        with self._oras.do_request(
            self._manifest_url(tag_or_digest), "GET", headers={"Accept": ", ".join(mt.ACCEPT)}, stream=True
        ) as response:
            check_status(response, what)
            body = bytearray()
            try:
                for chunk in response.iter_content(_CHUNK):
                    body += chunk
                    if len(body) > limit:
                        raise ArtifactTooLarge(f"{what} is larger than {limit} bytes")
            except requests.RequestException as err:
                raise RegistryUnavailable(f"{what}: {err}") from err
            return bytes(body), response.headers.get("Content-Type")

    def fetch_blob(self, digest: str, sink: Callable[[bytes], object]) -> None:
        """Stream a blob into `sink` (which verifies and bounds it); a broken stream is transient."""
        what = f"blob {self.ref.host}/{self.ref.repository}@{digest}"
        with self._oras.get_blob(self._container, digest, stream=True) as response:
            check_status(response, what)
            try:
                for chunk in response.iter_content(_CHUNK):
                    sink(chunk)
            except requests.RequestException as err:
                raise RegistryUnavailable(f"{what}: {err}") from err

    def push_blob(self, path: Path, digest: str, size: int) -> None:
        what = f"upload of {digest} to {self.ref.host}/{self.ref.repository}"
        probe = self._oras.do_request(self._base + str(self._container.get_blob_url(digest)), "HEAD")
        if probe.status_code == 200:
            return
        if probe.status_code != 404:  # oras-py would hide a refusal behind a ValueError
            check_status(probe, what)
        layer = {"digest": digest, "size": size, "mediaType": "application/octet-stream"}
        try:
            response = self._oras.upload_blob(str(path), self._container, layer)
        except ValueError as err:  # oras-py's way of saying the upload session could not start
            raise OciError(f"{what}: {err}") from err
        check_status(response, what)

    def push_manifest(self, tag_or_digest: str, body: bytes, media_type: str) -> str | None:
        response = self._oras.do_request(
            self._manifest_url(tag_or_digest), "PUT", data=body, headers={"Content-Type": media_type}
        )
        check_status(response, f"manifest push to {self.ref.host}/{self.ref.repository}:{tag_or_digest}")
        served = response.headers.get("Docker-Content-Digest")
        return str(served) if served else None
