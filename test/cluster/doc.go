// Package cluster runs a real, local Kubernetes control plane for tests, the
// demo and development: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and kwok (the fake kubelet), all on 127.0.0.1 with free
// ports, built from pinned modules under test/tools.
//
// kwok is configured as a simulated container registry: a pod turns Ready
// only when every container image is in KnownImages; any other image waits in
// ImagePullBackOff forever, as a typo would. Pods annotated
// sim.rollout-guard.io/crash: "true" crash-loop, and pods annotated
// sim.rollout-guard.io/never-ready: "true" run but never turn Ready.
//
// A cluster is either attached (its processes die with the caller, used by Go
// tests) or detached (it outlives the caller and is stopped from its state
// file, used by make dev-up / dev-down).
package cluster
