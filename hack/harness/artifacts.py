"""Artifacts that carry files besides their module, built as `spin registry push` and `docker build`
would lay them out, for the tests of `spec.files`."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import posixpath
import tarfile
from collections.abc import Mapping

from shoal_oci import mediatypes as mt
from shoal_oci.layers import WHITEOUT_PREFIX
from shoal_oci.push import Artifact, Blob, Manifest, build


def _manifest(config: Blob, layers: list[Blob]) -> Manifest:
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in layers],
    }
    return Manifest(mt.OCI_MANIFEST, json.dumps(doc).encode())


def spin_with_files(wasm: bytes, files: Mapping[str, bytes]) -> Artifact:
    """A single-component Spin app whose component lists `files` (path -> bytes), each file its own
    `application/vnd.wasm.content.layer.v1+data` layer, as Spin's registry push makes them."""
    module = Blob(mt.SPIN_WASM_LAYER, wasm)
    data = {path: Blob(mt.SPIN_DATA_LAYER, body) for path, body in files.items()}
    locked = {
        "spin_lock_version": 1,
        "metadata": {"name": "files", "origin": "shoal-tests"},
        "triggers": [
            {"id": "t", "trigger_type": "http", "trigger_config": {"component": "main", "route": "/..."}}
        ],
        "components": [
            {
                "id": "main",
                "source": {"content_type": "application/wasm", "content": {"digest": module.digest}},
                "files": [{"content": {"digest": b.digest}, "path": p} for p, b in data.items()],
            }
        ],
    }
    config = Blob(mt.SPIN_CONFIG, json.dumps(locked).encode())
    layers = [module, *{b.digest: b for b in data.values()}.values()]
    return Artifact((config, *layers), (_manifest(config, layers),))


def image_with_files(
    wasm: bytes, *layers: Mapping[str, bytes | None], entrypoint: str = "/app.wasm"
) -> Artifact:
    """A Docker+Wasm image: the module's layer, then one tar layer per mapping of `layers` (path ->
    bytes; None is a whiteout, as `docker build` writes for a file an upper layer removes)."""
    base = build(wasm, "docker-wasm", entrypoint=entrypoint)
    image_config = json.loads(base.blobs[0].data)
    blobs = [base.blobs[1]]
    for files in layers:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for path, body in files.items():
                name = path.lstrip("/")
                if body is None:
                    folder, leaf = posixpath.split(name)
                    name, body = posixpath.join(folder, WHITEOUT_PREFIX + leaf), b""
                info = tarfile.TarInfo(name)
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
        blobs.append(Blob(mt.OCI_LAYER_TAR_GZIP, gzip.compress(buf.getvalue(), mtime=0)))
        image_config["rootfs"]["diff_ids"].append("sha256:" + hashlib.sha256(buf.getvalue()).hexdigest())
    config = Blob(base.blobs[0].media_type, json.dumps(image_config).encode())
    return Artifact((config, *blobs), (_manifest(config, blobs),))
