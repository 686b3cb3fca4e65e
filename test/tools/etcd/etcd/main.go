// Command etcd is the upstream etcd server at the version kube-apiserver v1.36 is tested with.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
