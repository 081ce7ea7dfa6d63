// Package bridgeproc starts a gearbridge bridge as a child process with a
// fresh private CA, for the benchmarks: the bridge runs on its own, so its
// memory and CPU can be read apart from the load generator.
package bridgeproc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"time"

	"github.com/gearbridge/gearbridge/certs"
)

// Options describe the bridge and its one client.
type Options struct {
	Bin         string     // gearbridge binary; empty means this executable
	Server      string     // gearmand host:port
	Key         string     // classic payload key
	ClientRole  certs.Role // role of the client certificate the caller uses
	ClientName  string
	AuthzYAML   string   // contents of the --authz file
	ExtraArgs   []string // further bridge flags
	StartupWait time.Duration
}

// Proc is the running bridge.
type Proc struct {
	Cmd       *exec.Cmd
	Addr      string      // host:port it listens on
	ClientTLS *tls.Config // for a client with ClientRole/ClientName
	LogPath   string
	done      chan struct{}
}

// Start creates a CA and certificates in dir and starts the bridge on a
// free loopback port. The caller must Stop it.
func Start(ctx context.Context, dir string, o Options) (*Proc, error) {
	ca, err := certs.InitCA(filepath.Join(dir, "ca"), certs.CAOptions{})
	if err != nil {
		return nil, err
	}
	caFile := filepath.Join(dir, "ca", certs.CACertFile)
	if err := issue(ca, dir, "bridge", certs.RoleBridge); err != nil {
		return nil, err
	}
	if err := issue(ca, dir, o.ClientName, o.ClientRole); err != nil {
		return nil, err
	}
	authz := filepath.Join(dir, "authz.yaml")
	if err := os.WriteFile(authz, []byte(o.AuthzYAML), 0o644); err != nil {
		return nil, err
	}
	clientTLS, err := certs.ClientTLSConfig(filepath.Join(dir, o.ClientName+".crt"), filepath.Join(dir, o.ClientName+".key"), caFile, "localhost")
	if err != nil {
		return nil, err
	}
	bin := o.Bin
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	logPath := filepath.Join(dir, "bridge.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	args := append([]string{"bridge", "--listen", "127.0.0.1:0", "--server", o.Server, "--key", o.Key,
		"--tls-ca", caFile, "--tls-cert", filepath.Join(dir, "bridge.crt"), "--tls-key", filepath.Join(dir, "bridge.key"),
		"--authz", authz, "--log-level", "info", "--log-format", "text"}, o.ExtraArgs...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	p := &Proc{Cmd: cmd, ClientTLS: clientTLS, LogPath: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(p.done) }()
	wait := o.StartupWait
	if wait <= 0 {
		wait = 20 * time.Second
	}
	// The bridge logs its address once it listens.
	rx := regexp.MustCompile(`bridge serving.* addr=(\S+)`)
	deadline := time.Now().Add(wait)
	for {
		log, _ := os.ReadFile(logPath)
		if m := rx.FindSubmatch(log); m != nil {
			p.Addr = string(m[1])
			return p, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("bridge exited: %s", log)
		case <-ctx.Done():
			p.Stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Stop()
			return nil, fmt.Errorf("bridge did not start listening within %v", wait)
		}
	}
}

// Stop stops the bridge (SIGTERM, then SIGKILL after 15 s) and waits.
func (p *Proc) Stop() {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.Cmd.Process.Kill()
		<-p.done
	}
}

// RSSMB reads the bridge's resident memory in MiB.
func (p *Proc) RSSMB() (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	var kb int
	for _, line := range regexp.MustCompile(`(?m)^VmRSS:\s+(\d+) kB`).FindAllSubmatch(b, 1) {
		if _, err := fmt.Sscan(string(line[1]), &kb); err != nil {
			return 0, err
		}
		return float64(kb) / 1024, nil
	}
	return 0, errors.New("no VmRSS in /proc status")
}

func issue(ca *certs.CA, dir, name string, role certs.Role) error {
	var crt, key []byte
	var err error
	if role == certs.RoleBridge {
		crt, key, err = ca.IssueServer([]string{"localhost", "127.0.0.1"}, 0)
	} else {
		crt, key, err = ca.IssueClient(role, name, 0)
	}
	if err != nil {
		return err
	}
	if err := certs.WriteFileAtomic(filepath.Join(dir, name+".key"), key, certs.KeyFileMode); err != nil {
		return err
	}
	return certs.WriteFileAtomic(filepath.Join(dir, name+".crt"), crt, certs.CertFileMode)
}
