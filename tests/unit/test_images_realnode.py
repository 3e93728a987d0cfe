"""The pure parts of `make images` and of the real node: podman's and containerd's configuration, the
build's argv and tag, the helm values, and which mounts `make down` removes."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from localcluster.images import (
    IMAGES,
    Built,
    build_argv,
    capped,
    containers_conf,
    inputs_hash,
    mmdebstrap_argv,
    ulimit_args,
)
from localcluster.realchart import helm_values, node_refs
from localcluster.realnode import (
    NodeAddresses,
    cni_config,
    containerd_config,
    hosts_toml,
    kube_proxy_config,
    kubelet_config,
    mounts_under,
)
from shoal_oci import ArtifactPuller, insecure_from_env

pytestmark = pytest.mark.unit


def test_podman_runs_runc_on_cgroupfs_with_limits_it_may_set() -> None:
    conf = tomllib.loads(containers_conf((1024, 20000), capped((96364, 96364), 32768)))
    assert conf["engine"]["runtime"] == "runc"
    assert conf["engine"]["cgroup_manager"] == "cgroupfs"
    assert conf["containers"]["default_ulimits"] == ["nofile=1024:20000", "nproc=32768:32768"]
    assert ulimit_args((1024, 20000), (10, 20)) == ["--ulimit=nofile=1024:20000", "--ulimit=nproc=10:20"]


def test_the_build_takes_the_bases_as_arguments_and_the_ca_as_a_secret() -> None:
    agent = next(i for i in IMAGES if i.name == "shoal-agent")
    argv = build_argv(agent, "localhost/shoal-agent:t", "base:1", "rust:1", Path("/ca.pem"))
    assert argv[:2] == ["podman", "build"] and argv[-1] == "."
    assert "--build-arg=BASE=base:1" in argv and "--build-arg=RUST_BASE=rust:1" in argv
    assert "--secret=id=ca,src=/ca.pem" in argv
    assert "--network=host" in argv
    assert not any(a.startswith("--secret") for a in build_argv(agent, "r", "b", "r", None))


def test_the_dockerfiles_default_to_public_bases_and_never_copy_the_ca() -> None:
    repo = Path(__file__).resolve().parents[2]
    for image in IMAGES:
        text = (repo / image.dockerfile).read_text()
        assert "ARG BASE=python:3.11-slim-bookworm" in text
        assert "--mount=type=secret,id=ca" in text
        assert "ca-certificates.crt" not in text and "--mount=from=" not in text
    assert "ARG RUST_BASE=rust:" in (repo / "node-agent/Dockerfile").read_text()


def test_the_tag_follows_the_inputs() -> None:
    a = inputs_hash({"x.py": b"1", "y.py": b"2"})
    assert a == inputs_hash({"y.py": b"2", "x.py": b"1"})
    assert a != inputs_hash({"x.py": b"1", "y.py": b"3"})
    assert a != inputs_hash({"x.py": b"1", "z.py": b"2"})


def test_mmdebstrap_makes_a_minbase_without_apt_lists() -> None:
    argv = mmdebstrap_argv(Path("/o.tar"), ("python3", "gcc"), ["echo hi"])
    assert argv[:2] == ["mmdebstrap", "--variant=minbase"]
    assert "--include=python3,gcc" in argv and "--customize-hook=echo hi" in argv
    assert argv[-2:] == ["bookworm", "/o.tar"]


def test_containerd_uses_its_own_paths_cgroupfs_and_clamped_oom_scores(tmp_path: Path) -> None:
    conf = tomllib.loads(
        containerd_config(
            root=tmp_path / "root",
            state=Path("/run/x"),
            cni_conf=tmp_path / "net.d",
            certs_d=tmp_path / "certs.d",
            sandbox_image="reg:1/shoal/pause:3.10",
        )
    )
    cri = conf["plugins"]["io.containerd.grpc.v1.cri"]
    assert conf["grpc"]["address"] == "/run/x/containerd.sock"
    assert cri["restrict_oom_score_adj"] is True
    runc = cri["containerd"]["runtimes"]["runc"]["options"]
    assert runc == {"SystemdCgroup": False, "Root": "/run/x/runc"}
    assert cri["registry"]["config_path"] == str(tmp_path / "certs.d")
    assert tomllib.loads(hosts_toml("10.0.0.1:5000"))["server"] == "http://10.0.0.1:5000"


def test_pods_get_a_default_route_through_the_bridge(tmp_path: Path) -> None:
    addrs = NodeAddresses(7)
    conf = cni_config(addrs, tmp_path)
    bridge = conf["plugins"][0]
    assert bridge["isGateway"] is True
    assert bridge["ipam"]["routes"] == [{"dst": "0.0.0.0/0"}]
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.214.7.0/24", "gateway": "10.214.7.1"}]]
    json.dumps(conf)  # what containerd reads


def test_kubelet_and_kube_proxy_stay_in_their_own_corner(tmp_path: Path) -> None:
    k = kubelet_config(
        ca=tmp_path / "ca.crt",
        socket=Path("/run/x/c.sock"),
        node_ip="10.215.7.2",
        cgroup_root="/shoal-a",
        pod_logs=tmp_path,
    )
    assert k["cgroupRoot"] == "/shoal-a" and k["cgroupDriver"] == "cgroupfs"
    assert k["authentication"]["anonymous"]["enabled"] is False
    assert k["containerRuntimeEndpoint"] == "unix:///run/x/c.sock"
    p = kube_proxy_config(kubeconfig=tmp_path / "k", cluster_cidr="10.214.7.0/24", node_name="real-1")
    assert p["mode"] == "iptables" and p["conntrack"]["maxPerCore"] == 0
    assert p["iptables"]["masqueradeAll"] is True


def test_down_unmounts_only_what_lies_under_our_directories_deepest_first() -> None:
    mountinfo = "\n".join(
        [
            "22 1 0:21 / /proc rw - proc proc rw",
            "30 1 0:30 / /w/kubelet/pods/a/volumes/x rw - tmpfs tmpfs rw",
            "31 1 0:31 / /w/kubelet/pods/a/volumes/x/y rw - tmpfs tmpfs rw",
            "32 1 0:32 / /run/n/io.containerd/k8s.io/c1/rootfs rw - overlay overlay rw",
            "33 1 0:33 / /wx/other rw - tmpfs tmpfs rw",
        ]
    )
    assert mounts_under(mountinfo, [Path("/w"), Path("/run/n")]) == [
        "/w/kubelet/pods/a/volumes/x/y",
        "/run/n/io.containerd/k8s.io/c1/rootfs",
        "/w/kubelet/pods/a/volumes/x",
    ]


def test_helm_values_put_both_images_on_the_real_node() -> None:
    built = [
        Built("shoal-operator", "localhost/shoal-operator:abc", 1.0, 1),
        Built("shoal-agent", "localhost/shoal-agent:abc", 1.0, 1),
    ]
    refs = node_refs(built, "10.213.5.1:4000")
    assert refs["shoal-agent"] == "10.213.5.1:4000/shoal/shoal-agent:abc"
    values = helm_values(refs, "10.213.5.1:4000")
    assert "--set=agent.image.repository=10.213.5.1:4000/shoal/shoal-agent" in values
    assert "--set=operator.image.tag=abc" in values
    assert "--set-string=agent.nodeSelector.shoal\\.dev/real-node=true" in values
    assert "--set=agent.extraEnv[0].value=10.213.5.1:4000" in values


def test_insecure_registries_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert insecure_from_env({"SHOAL_INSECURE_REGISTRIES": " a:1, b:2 ,"}) == {"a:1", "b:2"}
    assert insecure_from_env({}) == frozenset()
    monkeypatch.setenv("SHOAL_INSECURE_REGISTRIES", "10.213.5.1:4000")
    assert set(ArtifactPuller(tmp_path).insecure_registries) == {"10.213.5.1:4000"}
