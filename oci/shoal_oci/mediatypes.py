"""Media types of the three Wasm packagings we accept, and of the image manifests that carry them."""

from __future__ import annotations

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"

IMAGE_MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEXES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
ACCEPT = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)

# (1) CNCF TAG-Runtime Wasm OCI artifact.
WASM_CONFIG = "application/vnd.wasm.config.v0+json"
WASM_LAYER = "application/wasm"

# (2) Spin applications (`spin registry push`). The locked app is the manifest's config (older Spin
# releases) or a layer of this media type beside an OCI image config (newer ones).
SPIN_CONFIG = "application/vnd.fermyon.spin.application.v1+config"
SPIN_WASM_LAYER = "application/vnd.wasm.content.layer.v1+wasm"
SPIN_DATA_LAYER = "application/vnd.wasm.content.layer.v1+data"  # one of the app's files, as is

# (3) Docker+Wasm: an ordinary image whose filesystem layers hold the module.
OCI_IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_IMAGE_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LAYER_TAR_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
TAR_LAYERS = frozenset({OCI_LAYER_TAR, OCI_LAYER_TAR_GZIP, DOCKER_LAYER_TAR_GZIP})
GZIP_LAYERS = frozenset({OCI_LAYER_TAR_GZIP, DOCKER_LAYER_TAR_GZIP})

# Platforms that mark a Wasm entry in an image index.
WASM_OSES = frozenset({"wasi", "wasip1", "wasip2"})
WASM_ARCHITECTURE = "wasm"
