"""`make images`: build the chart's operator and agent images with podman, offline.

No Docker Hub: the bases are Debian bookworm root filesystems made here with mmdebstrap from the
host's own apt sources and imported into podman (cached as tarballs in ~/.cache/shoal/images):

- `localhost/shoal-base:bookworm`: minbase, python3, python3-venv, ca-certificates;
- `localhost/shoal-rust:<rustc version>`: the same with gcc and the host's Rust toolchain (rustup's
  `stable`, the one `make setup` builds the data plane with), for the agent's Rust stage.

The Dockerfiles take them as build arguments (BASE, RUST_BASE) whose defaults are the public images.
The host's CA bundle reaches pip and cargo as the build secret `ca` (never an image layer). Podman runs
with its own configuration and storage under ~/.cache/shoal/containers (runc, cgroupfs, ulimits the
process may set: this host has hybrid cgroup v1 and no CAP_SYS_RESOURCE), and buildah's cache mounts
(cargo's target dir and registry, pip's cache) live there too, so a second build recompiles nothing.

Functional core: the argv and config builders are pure; `build_images` runs them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("SHOAL_CACHE", Path.home() / ".cache" / "shoal"))
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
RUST_PACKAGES = (*BASE_PACKAGES, "gcc", "libc6-dev")
BASE_IMAGE = "localhost/shoal-base:bookworm"
RUST_IMAGE = "localhost/shoal-rust"
SUITE = "bookworm"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What the images are built from: their tag is a hash of these files' contents.
INPUTS = ("pyproject.toml", "README.md", ".dockerignore", "api", "oci", "operator", "node-agent", "cli")


@dataclass(frozen=True)
class ImageSpec:
    name: str
    dockerfile: str


IMAGES = (
    ImageSpec("shoal-operator", "operator/Dockerfile"),
    ImageSpec("shoal-agent", "node-agent/Dockerfile"),
)


@dataclass(frozen=True)
class Built:
    name: str
    ref: str
    """The local reference, localhost/<name>:<tag>."""
    seconds: float
    size_bytes: int


# --- pure ------------------------------------------------------------------------------------------


def containers_conf(nofile: tuple[int, int], nproc: tuple[int, int]) -> str:
    """containers.conf for this host: runc (crun fails on hybrid cgroup v1), cgroupfs (no systemd),
    and ulimits no higher than this process's own (root lacks CAP_SYS_RESOURCE, so podman's default
    of 1048576 open files cannot be set)."""
    return (
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile[0]}:{nofile[1]}", "nproc={nproc[0]}:{nproc[1]}"]\n'
        "[engine]\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
    )


def storage_conf(root: Path) -> str:
    return f'[storage]\ndriver = "overlay"\ngraphroot = "{root / "storage"}"\nrunroot = "{root / "run"}"\n'


def mmdebstrap_argv(out: Path, packages: Sequence[str], hooks: Sequence[str] = ()) -> list[str]:
    """A minbase root filesystem as a tarball, from the host's apt sources, without apt's lists."""
    argv = [
        "mmdebstrap",
        "--variant=minbase",
        f"--include={','.join(packages)}",
        '--aptopt=Acquire::Retries "3"',
    ]
    argv += [f"--customize-hook={h}" for h in hooks]
    argv += [
        '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*',
        SUITE,
        str(out),
    ]
    return argv


def rust_hooks(toolchain: Path) -> list[str]:
    """Copy the host's Rust toolchain (no docs) into /usr/local/rust of the Rust base."""
    return [
        'mkdir -p "$1"/usr/local/rust "$1"/usr/local/cargo',
        *(f'cp -a {toolchain / d} "$1"/usr/local/rust/' for d in ("bin", "lib", "libexec")),
    ]


def import_argv(tarball: Path, ref: str, env: Mapping[str, str]) -> list[str]:
    argv = ["podman", "import"]
    argv += [f"--change=ENV {k}={v}" for k, v in env.items()]
    return [*argv, str(tarball), ref]


def rust_env() -> dict[str, str]:
    return {
        "CARGO_HOME": "/usr/local/cargo",
        "PATH": "/usr/local/cargo/bin:/usr/local/rust/bin:" + SYSTEM_PATH,
    }


NPROC_CAP = 32768
"""Measured on these hosts: runc sets nproc 32768 inside a container, but 65536 or the host's own hard
limit (96364) fail with EPERM ("error setting rlimit type 6")."""


def capped(limit: tuple[int, int], cap: int) -> tuple[int, int]:
    return (min(limit[0], cap), min(limit[1], cap))


def ulimit_args(nofile: tuple[int, int], nproc: tuple[int, int]) -> list[str]:
    """buildah's RUN steps ignore containers.conf's default_ulimits: the same limits, as flags."""
    return [f"--ulimit=nofile={nofile[0]}:{nofile[1]}", f"--ulimit=nproc={nproc[0]}:{nproc[1]}"]


def build_argv(
    spec: ImageSpec, ref: str, base: str, rust_base: str, ca: Path | None, ulimits: Sequence[str] = ()
) -> list[str]:
    argv = [
        "podman",
        "build",
        "--layers",
        # RUN steps use the host's network: no CNI bridge or iptables rules of podman's on the host.
        "--network=host",
        *ulimits,
        f"--file={spec.dockerfile}",
        f"--tag={ref}",
        f"--build-arg=BASE={base}",
        f"--build-arg=RUST_BASE={rust_base}",
    ]
    if ca is not None:
        argv.append(f"--secret=id=ca,src={ca}")
    return [*argv, "."]


def inputs_hash(files: Mapping[str, bytes]) -> str:
    """A tag from the build inputs: path and content of every file, in path order."""
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(path.encode() + b"\0" + hashlib.sha256(files[path]).digest())
    return h.hexdigest()[:12]


# --- shell -----------------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[images {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def podman_env() -> dict[str, str]:
    """Podman's environment: its own config and storage under the cache, and TMPDIR there too (where
    buildah keeps RUN --mount=type=cache directories)."""
    root = CACHE / "containers"
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    conf, storage = root / "containers.conf", root / "storage.conf"
    conf.write_text(
        containers_conf(
            resource.getrlimit(resource.RLIMIT_NOFILE),
            capped(resource.getrlimit(resource.RLIMIT_NPROC), NPROC_CAP),
        )
    )
    storage.write_text(storage_conf(root))
    return {
        **os.environ,
        "CONTAINERS_CONF": str(conf),
        "CONTAINERS_STORAGE_CONF": str(storage),
        "TMPDIR": str(root / "tmp"),
    }


def missing_tools() -> list[str]:
    return [t for t in ("podman", "mmdebstrap") if shutil.which(t) is None]


def _run(argv: Sequence[str], env: Mapping[str, str], logfile: Path | None = None) -> None:
    if logfile is None:
        subprocess.run(argv, env=env, check=True, cwd=REPO)
        return
    with logfile.open("w") as out:
        done = subprocess.run(argv, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = logfile.read_text(errors="replace").splitlines()[-40:]
        raise RuntimeError(f"{argv[0]} {argv[1]} failed (whole log: {logfile}):\n" + "\n".join(tail))


def image_exists(ref: str, env: Mapping[str, str]) -> bool:
    return subprocess.run(["podman", "image", "exists", ref], env=env, check=False).returncode == 0


def image_size(ref: str, env: Mapping[str, str]) -> int:
    out = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Size}}", ref],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.strip())


def rust_toolchain() -> tuple[Path, str]:
    """The toolchain `make setup` builds with (rustup's active one) and its rustc version."""
    sysroot = subprocess.run(
        ["rustc", "--print", "sysroot"], check=True, capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    version = subprocess.run(
        ["rustc", "--version"], check=True, capture_output=True, text=True, cwd=REPO
    ).stdout.split()[1]
    return Path(sysroot), version


def ensure_base(
    ref: str,
    packages: Sequence[str],
    hooks: Sequence[str],
    env_vars: Mapping[str, str],
    env: Mapping[str, str],
) -> None:
    """The base image `ref`: imported from its cached tarball, made with mmdebstrap if missing."""
    if image_exists(ref, env):
        return
    images = CACHE / "images"
    images.mkdir(parents=True, exist_ok=True)
    tarball = images / (ref.split("/", 1)[1].replace(":", "-") + ".tar")
    if not tarball.exists():
        log(f"making {tarball.name} with mmdebstrap ({', '.join(packages)})")
        start = time.monotonic()
        partial = tarball.with_suffix(".partial.tar")
        _run(mmdebstrap_argv(partial, packages, hooks), env, images / f"{tarball.stem}.log")
        partial.rename(tarball)
        log(f"{tarball.name}: {tarball.stat().st_size >> 20} MiB in {time.monotonic() - start:.0f}s")
    _run(import_argv(tarball, ref, env_vars), env, images / f"{tarball.stem}.import.log")


def tag() -> str:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", *INPUTS],
        check=True,
        capture_output=True,
        cwd=REPO,
    ).stdout.split(b"\0")
    files = {
        p.decode(): (REPO / p.decode()).read_bytes() for p in listed if p and (REPO / p.decode()).is_file()
    }
    return inputs_hash(files)


def build_images(push_to: str | None = None) -> list[Built]:
    missing = missing_tools()
    if missing:
        raise RuntimeError(
            f"make images needs {' and '.join(missing)} (Debian packages; `make setup` installs them)"
        )
    env = podman_env()
    toolchain, rustc = rust_toolchain()
    rust_ref = f"{RUST_IMAGE}:{rustc}"
    ensure_base(BASE_IMAGE, BASE_PACKAGES, (), {}, env)
    ensure_base(rust_ref, RUST_PACKAGES, rust_hooks(toolchain), rust_env(), env)
    ca = CA_BUNDLE if CA_BUNDLE.exists() else None
    version = tag()
    built = []
    logs = CACHE / "images"
    for spec in IMAGES:
        ref = f"localhost/{spec.name}:{version}"
        log(f"building {ref}")
        start = time.monotonic()
        ulimits = ulimit_args(
            resource.getrlimit(resource.RLIMIT_NOFILE),
            capped(resource.getrlimit(resource.RLIMIT_NPROC), NPROC_CAP),
        )
        argv = build_argv(spec, ref, BASE_IMAGE, rust_ref, ca, ulimits)
        _run(argv, env, logs / f"{spec.name}.build.log")
        built.append(Built(spec.name, ref, time.monotonic() - start, image_size(ref, env)))
        if push_to:
            push(ref, f"{push_to}/shoal/{spec.name}:{version}", env)
    return built


def push(ref: str, dest: str, env: Mapping[str, str] | None = None) -> None:
    """Push to a plain-http registry (the local one, on loopback or the test network)."""
    _run(["podman", "push", "--quiet", "--tls-verify=false", ref, dest], env or podman_env(), None)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m localcluster.images", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--push", metavar="REGISTRY", help="also push to this plain-http registry (host:port)"
    )
    args = parser.parse_args(argv)
    try:
        built = build_images(args.push)
    except (RuntimeError, subprocess.CalledProcessError) as err:
        print(f"make images: {err}", file=sys.stderr)
        return 2
    for b in built:
        key = b.name.replace("shoal-", "")
        print(f"{key}_image={b.ref}")
        print(f"{key}_build_s={b.seconds:.1f}")
        print(f"{key}_size_mb={b.size_bytes / 1e6:.0f}")
    print(json.dumps({b.name: b.ref for b in built}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
