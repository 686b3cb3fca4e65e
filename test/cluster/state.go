package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

const stateFile = "state.json"

// SaveState records a detached cluster so that a later process can stop it.
func (c *Cluster) SaveState() error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("encode cluster state: %w", err)
	}
	if err := os.WriteFile(filepath.Join(c.Dir, stateFile), data, 0o600); err != nil {
		return fmt.Errorf("write cluster state: %w", err)
	}
	return nil
}

// LoadState reads the state of a detached cluster from dir. It returns
// os.ErrNotExist (wrapped) when no cluster was recorded there.
func LoadState(dir string) (*Cluster, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, fmt.Errorf("read cluster state: %w", err)
	}
	var c Cluster
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("decode cluster state %s: %w", filepath.Join(dir, stateFile), err)
	}
	return &c, nil
}

// Running reports which recorded processes are still alive.
func (c *Cluster) Running() []*Process {
	var alive []*Process
	for _, p := range c.Processes {
		if gone, _ := p.exited(); !gone {
			alive = append(alive, p)
		}
	}
	return alive
}

// StopDetached stops a cluster recorded with SaveState and removes the record.
func StopDetached(dir string) error {
	c, err := LoadState(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	c.Stop()
	if left := c.Running(); len(left) > 0 {
		return fmt.Errorf("%s (pid %d) did not stop", left[0].Name, left[0].PID)
	}
	if err := os.Remove(filepath.Join(dir, stateFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove cluster state: %w", err)
	}
	// Give the kernel a moment to release the ports before a quick dev-up.
	time.Sleep(100 * time.Millisecond)
	return nil
}
