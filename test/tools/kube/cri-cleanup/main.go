// Command cri-cleanup removes every pod sandbox a CRI runtime holds, as `crictl rmp -af` would (crictl is not in
// the module proxy). Teardown runs it after the kubelet has stopped: stopping a sandbox is what runs CNI DEL (veth,
// IPAM lease, the bridge and portmap plugins' iptables rules) and unmounts its shm and network namespace, and it
// must not depend on the API server still answering.
//
// Usage: cri-cleanup unix:///path/to/containerd.sock
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"go.opentelemetry.io/otel/trace/noop"
	criclient "k8s.io/cri-client/pkg"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: cri-cleanup unix:///path/to/runtime.sock")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	runtime, err := criclient.NewRemoteRuntimeService(ctx, args[0], 10*time.Second, noop.NewTracerProvider(), false)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cri-cleanup: connect to %s: %v\n", args[0], err)
		return 1
	}
	sandboxes, err := runtime.ListPodSandbox(ctx, nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cri-cleanup: list pod sandboxes: %v\n", err)
		return 1
	}
	code := 0
	for _, s := range sandboxes {
		name := s.GetMetadata().GetNamespace() + "/" + s.GetMetadata().GetName()
		// Stop before remove: remove alone skips CNI DEL when the sandbox is still running.
		if err := runtime.StopPodSandbox(ctx, s.GetId()); err != nil {
			fmt.Fprintf(os.Stderr, "cri-cleanup: stop sandbox %s: %v\n", name, err)
			code = 1
			continue
		}
		if err := runtime.RemovePodSandbox(ctx, s.GetId()); err != nil {
			fmt.Fprintf(os.Stderr, "cri-cleanup: remove sandbox %s: %v\n", name, err)
			code = 1
			continue
		}
		fmt.Printf("cri-cleanup: removed sandbox %s\n", name)
	}
	return code
}
