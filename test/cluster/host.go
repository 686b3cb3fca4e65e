package cluster

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// hostBefore is what a real node changes on the host and teardown restores: sysctls the kubelet, kube-proxy and
// the bridge plugin set, host paths that the kubelet and libcni create wherever they are configured, and whether
// the host had any nftables ruleset (iptables-nft leaves empty tables behind).
type hostBefore struct {
	Sysctls  map[string]string `json:"sysctls"`
	Paths    []string          `json:"paths"`
	NftEmpty bool              `json:"nftEmpty"`
}

var (
	touchedSysctls = []string{"net.ipv4.ip_forward", "vm.overcommit_memory", "vm.panic_on_oom", "kernel.panic",
		"kernel.panic_on_oops", "kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes", "net.ipv4.conf.all.route_localnet",
		"net.bridge.bridge-nf-call-iptables"}
	// hostPaths are created by the kubelet (log symlinks and the device-plugin socket are hard-coded), libcni (its
	// result cache) and libmount, whatever the configuration says.
	hostPaths = []string{"/var/log/containers", "/var/lib/kubelet", "/var/lib/cni", "/run/mount"}
)

func sysctlPath(key string) string {
	return filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
}

func recordHost() hostBefore {
	h := hostBefore{Sysctls: map[string]string{}}
	for _, k := range touchedSysctls {
		if v, err := os.ReadFile(sysctlPath(k)); err == nil {
			h.Sysctls[k] = strings.TrimSpace(string(v))
		}
	}
	for _, p := range hostPaths {
		if _, err := os.Lstat(p); err == nil {
			h.Paths = append(h.Paths, p)
		}
	}
	out, err := exec.Command("nft", "list", "ruleset").Output()
	h.NftEmpty = err == nil && len(bytes.TrimSpace(out)) == 0
	return h
}

// HostState is what a real node must leave as it found it, for tests of teardown: processes that belong to the
// node, mounts, network interfaces, routes, iptables rules, cgroups and the sysctls it touches.
type HostState struct {
	Processes []string          `json:"processes"`
	Mounts    []string          `json:"mounts"`
	Links     []string          `json:"links"`
	Routes    []string          `json:"routes"`
	Iptables  []string          `json:"iptables"`
	Cgroups   []string          `json:"cgroups"`
	Sysctls   map[string]string `json:"sysctls"`
	Paths     []string          `json:"paths"`
}

// SnapshotHost reads the host's state. binDir is where the node's binaries are: a process running one of them
// (or a container below the node's cgroups) counts as the node's.
func SnapshotHost(binDir string) (HostState, error) {
	h := HostState{Sysctls: recordHost().Sysctls}
	var errs []error
	h.Processes = nodeProcesses(binDir)
	if data, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) > 4 {
				h.Mounts = append(h.Mounts, f[4])
			}
		}
	} else {
		errs = append(errs, err)
	}
	if ifaces, err := net.Interfaces(); err == nil {
		for _, i := range ifaces {
			h.Links = append(h.Links, i.Name)
		}
	} else {
		errs = append(errs, err)
	}
	// the reference and use counters of a route change with traffic; the route is the rest
	for f, counters := range map[string][2]int{"/proc/net/route": {4, 5}, "/proc/net/ipv6_route": {6, 7}} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue // no IPv6 on this host
		}
		for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			fields := strings.Fields(line)
			if (f == "/proc/net/route" && i == 0) || len(fields) <= counters[1] {
				continue
			}
			fields[counters[0]], fields[counters[1]] = "-", "-"
			h.Routes = append(h.Routes, strings.Join(fields, " "))
		}
	}
	counters := regexp.MustCompile(`\[\d+:\d+\]`)
	for _, tool := range []string{"iptables-save", "ip6tables-save"} {
		out, err := exec.Command(tool).Output()
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(out), "\n") {
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			h.Iptables = append(h.Iptables, tool+": "+counters.ReplaceAllString(line, ""))
		}
	}
	h.Cgroups = kubepodsCgroups()
	for _, p := range hostPaths {
		if _, err := os.Lstat(p); err == nil {
			h.Paths = append(h.Paths, p)
		}
	}
	for _, l := range [][]string{h.Processes, h.Mounts, h.Links, h.Routes, h.Cgroups, h.Paths} {
		sort.Strings(l)
	}
	return h, errors.Join(errs...)
}

// Diff lists what differs from before, one line per difference.
func (h HostState) Diff(before HostState) []string {
	var out []string
	list := func(what string, was, is []string) {
		for _, x := range is {
			if !slices.Contains(was, x) {
				out = append(out, fmt.Sprintf("%s added: %s", what, x))
			}
		}
		for _, x := range was {
			if !slices.Contains(is, x) {
				out = append(out, fmt.Sprintf("%s gone: %s", what, x))
			}
		}
	}
	list("process", before.Processes, h.Processes)
	list("mount", before.Mounts, h.Mounts)
	list("interface", before.Links, h.Links)
	list("route", before.Routes, h.Routes)
	list("iptables", before.Iptables, h.Iptables)
	list("cgroup", before.Cgroups, h.Cgroups)
	list("path", before.Paths, h.Paths)
	for k, v := range before.Sysctls {
		if h.Sysctls[k] != v {
			out = append(out, fmt.Sprintf("sysctl %s: %s, was %s", k, h.Sysctls[k], v))
		}
	}
	return out
}

// nodeProcesses lists live processes that run a binary of binDir, a containerd shim, or sit in the kubelet's
// cgroups, as "pid command".
func nodeProcesses(binDir string) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	inPods := map[int]bool{}
	for _, pid := range kubepodsPIDs() {
		inPods[pid] = true
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !alive(pid) {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		mine := inPods[pid] || strings.HasPrefix(args[0], binDir+"/") || strings.Contains(args[0], "containerd-shim-runc-v2")
		if mine {
			out = append(out, fmt.Sprintf("%d %s", pid, strings.Join(args, " ")))
		}
	}
	return out
}

// kubepodsCgroups lists the kubelet's pod cgroup trees, in every v1 hierarchy and the unified one.
func kubepodsCgroups() []string {
	matches, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods")
	if _, err := os.Stat("/sys/fs/cgroup/kubepods"); err == nil {
		matches = append(matches, "/sys/fs/cgroup/kubepods")
	}
	return matches
}

func kubepodsPIDs() []int {
	var pids []int
	for _, root := range kubepodsCgroups() {
		_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			data, _ := os.ReadFile(path)
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil && !slices.Contains(pids, pid) {
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	return pids
}

// removeKubepodsCgroups removes the kubelet's cgroups, deepest first, after killing what still runs in them
// (containers whose shim died with an interrupted run).
func removeKubepodsCgroups() error {
	for _, pid := range kubepodsPIDs() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	var errs []error
	for _, root := range kubepodsCgroups() {
		var dirs []string
		_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		// a killed process leaves its cgroup only once it is reaped: try a few times
		for i := len(dirs) - 1; i >= 0; i-- {
			var err error
			for try := 0; try < 50; try++ {
				if err = syscall.Rmdir(dirs[i]); err == nil || errors.Is(err, os.ErrNotExist) {
					err = nil
					break
				}
				sleepBriefly()
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dirs[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

// unmountUnder unmounts everything mounted below root, deepest first (overlay root filesystems, shm, network
// namespaces, projected volumes, the kubelet's bind mount of its own directory).
func unmountUnder(root string) error {
	for pass := 0; pass < 3; pass++ {
		mounts := mountsUnder(root)
		if len(mounts) == 0 {
			return nil
		}
		for _, m := range mounts {
			if err := syscall.Unmount(m, 0); err != nil {
				_ = syscall.Unmount(m, syscall.MNT_DETACH)
			}
		}
	}
	if left := mountsUnder(root); len(left) > 0 {
		return fmt.Errorf("mounts left under %s: %s", root, strings.Join(left, ", "))
	}
	return nil
}

func mountsUnder(root string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 4 && (fields[4] == root || strings.HasPrefix(fields[4], root+"/")) {
			out = append(out, fields[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(out)))
	return out
}

// removeIptablesChains drops every KUBE-* and CNI-* chain and every rule that jumps to one (kube-proxy, the
// kubelet, the bridge plugin's masquerading, portmap); other rules stay as they are.
func removeIptablesChains() error {
	var errs []error
	for _, tool := range []string{"iptables", "ip6tables"} {
		saved, err := exec.Command(tool + "-save").Output()
		if err != nil {
			continue // no such family here
		}
		if !bytes.Contains(saved, []byte("KUBE-")) && !bytes.Contains(saved, []byte("CNI-")) {
			continue
		}
		var kept bytes.Buffer
		for _, line := range strings.SplitAfter(string(saved), "\n") {
			if !strings.Contains(line, "KUBE-") && !strings.Contains(line, "CNI-") {
				kept.WriteString(line)
			}
		}
		restore := exec.Command(tool + "-restore")
		restore.Stdin = &kept
		if out, err := restore.CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("%s-restore: %w: %s", tool, err, out))
		}
	}
	return errors.Join(errs...)
}

// dropEmptyNftTables removes the empty tables iptables-nft leaves behind, but only when the host had no
// ruleset at all before and no rule is left: anything else is somebody else's.
func dropEmptyNftTables(before hostBefore) error {
	if !before.NftEmpty {
		return nil
	}
	for _, tool := range []string{"iptables-save", "ip6tables-save"} {
		out, _ := exec.Command(tool).Output()
		if bytes.Contains(out, []byte("\n-A ")) {
			return nil
		}
	}
	if out, err := exec.Command("nft", "flush", "ruleset").CombinedOutput(); err != nil {
		return fmt.Errorf("nft flush ruleset: %w: %s", err, out)
	}
	return nil
}

func restoreSysctls(before hostBefore) error {
	var errs []error
	for k, v := range before.Sysctls {
		now, err := os.ReadFile(sysctlPath(k))
		if err != nil || strings.TrimSpace(string(now)) == v {
			continue
		}
		if err := os.WriteFile(sysctlPath(k), []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restore %s=%s: %w", k, v, err))
		}
	}
	return errors.Join(errs...)
}

// removeHostPaths removes what the node left outside its root: its log symlinks, the device-plugin socket, and
// the host directories that did not exist before, if empty now.
func removeHostPaths(before hostBefore, root string) error {
	links, _ := filepath.Glob("/var/log/containers/*.log")
	for _, l := range links {
		if target, err := os.Readlink(l); err == nil && strings.HasPrefix(target, root+"/") {
			_ = os.Remove(l)
		}
	}
	_ = os.Remove("/var/lib/kubelet/device-plugins/kubelet.sock")
	var errs []error
	for _, p := range hostPaths {
		if slices.Contains(before.Paths, p) {
			continue
		}
		removeEmptyDirs(p)
		if _, err := os.Lstat(p); err == nil {
			errs = append(errs, fmt.Errorf("%s was created by the node and is not empty", p))
		}
	}
	return errors.Join(errs...)
}

func removeEmptyDirs(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() {
			removeEmptyDirs(filepath.Join(dir, e.Name()))
		}
	}
	_ = syscall.Rmdir(dir)
}

// defaultRouteIP is the IPv4 address of the interface that holds the default route: the kubelet refuses a
// loopback node IP, and pods reach the API server at this address through the kubernetes Service.
func defaultRouteIP() (string, error) {
	data, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return "", fmt.Errorf("read routes: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 8 || f[1] != "00000000" || f[7] != "00000000" {
			continue
		}
		iface, err := net.InterfaceByName(f[0])
		if err != nil {
			return "", err
		}
		addrs, err := iface.Addrs()
		if err != nil {
			return "", err
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
				return ipn.IP.String(), nil
			}
		}
	}
	return "", errors.New("no IPv4 default route: the real node needs a non-loopback address for the kubelet")
}
