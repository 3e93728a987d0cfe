"""The chaos and soak suite (`make chaos`, a short version in `make test`): scenarios that break
Shoal's parts under bounded load on a local cluster and report measured figures."""
