// Command etcd is the etcd server at the version the pinned Kubernetes release requires.
// etcd's own root module carries replace directives, so it cannot be built with `go install @v`;
// calling etcdmain from our tools module builds the same server.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
