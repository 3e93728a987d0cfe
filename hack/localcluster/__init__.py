"""A real local Kubernetes control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)
and an OCI registry on loopback, for tests, benchmarks, `make up` and `make demo`."""
