package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process is one component of the local cluster running as a child process.
type Process struct {
	Name    string `json:"name"`
	PID     int    `json:"pid"`
	LogFile string `json:"logFile"`

	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// startProcess runs binary with args (and env added to this process's environment), its output in logDir/<name>.log. An
// attached process is killed when the calling thread's process dies; a
// detached one gets its own session and outlives the caller.
func startProcess(name, binary string, args, env []string, logDir string, detached bool) (*Process, error) {
	if _, err := os.Stat(binary); err != nil {
		return nil, fmt.Errorf("%s: binary %s is missing (run `make cluster-bins`): %w", name, binary, err)
	}
	logFile := filepath.Join(logDir, name+".log")
	out, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: open log file: %w", name, err)
	}
	defer out.Close()
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if detached {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		// If the test binary is killed outright, its cluster must not linger.
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start %s: %w (log: %s)", name, binary, err, logFile)
	}
	p := &Process{Name: name, PID: cmd.Process.Pid, LogFile: logFile, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended, and how.
func (p *Process) exited() (bool, error) {
	if p.done == nil {
		return !alive(p.PID), nil
	}
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// failure describes a component that did not come up, naming its log and
// quoting its end, so that a failed CI run says why without digging.
func (p *Process) failure(what string) error {
	return fmt.Errorf("%s %s; log: %s\n--- last lines of %s ---\n%s", p.Name, what, p.LogFile, p.Name, tail(p.LogFile, 15))
}

// waitFor polls check until it succeeds, the process exits, or timeout passes.
func (p *Process) waitFor(ctx context.Context, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if gone, err := p.exited(); gone {
			return p.failure(fmt.Sprintf("exited before it was ready (%v)", err))
		}
		if last = check(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return p.failure(fmt.Sprintf("not ready after %s: %v", timeout, last))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Stop ends the process group: SIGTERM, then SIGKILL after grace.
func (p *Process) Stop(grace time.Duration) {
	if p.PID <= 0 {
		return
	}
	_ = syscall.Kill(-p.PID, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if gone, _ := p.exited(); gone {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(-p.PID, syscall.SIGKILL)
	for i := 0; i < 100; i++ {
		if gone, _ := p.exited(); gone {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid is a live process (not a zombie) for processes
// this program did not start itself, such as those in a dev state file.
func alive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state letter follows the parenthesised command name.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

func tail(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// checkPortFree fails with a clear message when a requested port is taken.
func checkPortFree(component string, port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) && errno == syscall.EADDRINUSE {
			return fmt.Errorf("%s: port %d on 127.0.0.1 is already in use", component, port)
		}
		return fmt.Errorf("%s: port %d: %w", component, port, err)
	}
	return l.Close()
}
