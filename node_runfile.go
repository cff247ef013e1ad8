package ferrite

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// RunFile is written to <data_dir>/run/listeners.json once the node is
// ready and removed when it stops, so scripts and tests can find the bound
// addresses when a config asks for port 0.
const RunFile = "run/listeners.json"

// RunInfo is the content of RunFile.
type RunInfo struct {
	PID       int    `json:"pid"`
	NodeID    string `json:"node_id"`
	Mode      string `json:"mode"`
	MQTT      string `json:"mqtt,omitempty"`
	WebSocket string `json:"websocket,omitempty"`
	HTTP      string `json:"http,omitempty"`
	// MQTTS and WSS are the TLS listeners (broker.tls).
	MQTTS string `json:"mqtts,omitempty"`
	WSS   string `json:"wss,omitempty"`
}

func (n *Node) runInfo() RunInfo {
	return RunInfo{
		PID:       os.Getpid(),
		NodeID:    n.cfg.NodeID,
		Mode:      n.cfg.Mode,
		MQTT:      n.broker.Addr(),
		WebSocket: n.broker.WebSocketAddr(),
		HTTP:      n.HTTPAddr(),
		MQTTS:     n.broker.TLSAddr(),
		WSS:       n.broker.TLSWebSocketAddr(),
	}
}

// writeRunFile writes the file atomically (temporary file, fsync, rename).
func writeRunFile(dataDir string, info RunInfo) error {
	path := filepath.Join(dataDir, RunFile)
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("ferrite: run file: %w", err)
	}
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".listeners-*.json")
	if err != nil {
		return fmt.Errorf("ferrite: run file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("ferrite: run file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("ferrite: run file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("ferrite: run file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("ferrite: run file: %w", err)
	}
	return nil
}

// removeRunFile removes a run file (a stale one from a crashed run too).
func removeRunFile(dataDir string) error {
	err := os.Remove(filepath.Join(dataDir, RunFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ferrite: run file: %w", err)
	}
	return nil
}

// ReadRunFile reads <dataDir>/run/listeners.json.
func ReadRunFile(dataDir string) (RunInfo, error) {
	var info RunInfo
	b, err := os.ReadFile(filepath.Join(dataDir, RunFile))
	if err != nil {
		return info, err
	}
	err = json.Unmarshal(b, &info)
	return info, err
}
