package nebe2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bridgeCluster is a gearbridge bridge and one remote gearbridge worker
// (identifier w1) with fresh certificates.
type bridgeCluster struct {
	bin, dir, gearmand, addr string
	bridge, worker           *exec.Cmd
	bridgeDone               chan struct{}
}

func gbRun(t *testing.T, bin string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("gearbridge %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func startBridgeCluster(t *testing.T, gearmand string) *bridgeCluster {
	t.Helper()
	c := &bridgeCluster{bin: filepath.Join(artifacts(t), "gearbridge"), dir: t.TempDir(), gearmand: gearmand}
	ca := filepath.Join(c.dir, "ca")
	gbRun(t, c.bin, "certs", "init", "--dir", ca)
	gbRun(t, c.bin, "certs", "issue", "--dir", ca, "--role", "bridge", "--name", "bridge", "--san", "localhost,127.0.0.1")
	gbRun(t, c.bin, "certs", "issue", "--dir", ca, "--role", "worker", "--name", "w1")
	must(t, os.WriteFile(filepath.Join(c.dir, "authz.yaml"), []byte(
		"rules:\n  - {identity: \"w*\", role: worker, queues: [\"service\", \"host\", \"eventhandler\", \"notification\", \"hostgroup_*\", \"servicegroup_*\"]}\n"), 0o644))
	c.startBridge(t, "127.0.0.1:0")
	c.worker = c.start(t, "worker", nil, "worker", "--bridge", c.addr, "--identifier", "w1",
		"--tls-ca", filepath.Join(ca, "ca.crt"), "--tls-cert", filepath.Join(ca, "w1.crt"), "--tls-key", filepath.Join(ca, "w1.key"),
		"--services", "--hosts", "--eventhandler", "--notifications", "--hostgroups", "hg,custom", "--servicegroups", "sg", "--max-workers", "16")
	t.Cleanup(func() {
		for _, p := range []*exec.Cmd{c.worker, c.bridge} {
			if p != nil && p.Process != nil {
				_ = syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
			}
		}
		if t.Failed() {
			for _, n := range []string{"bridge", "worker"} {
				b, _ := os.ReadFile(filepath.Join(c.dir, n+".log"))
				t.Logf("---- %s log ----\n%s", n, tail(string(b), 40))
			}
		}
	})
	return c
}

func (c *bridgeCluster) start(t *testing.T, name string, done chan struct{}, args ...string) *exec.Cmd {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(c.dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	must(t, err)
	cmd := exec.Command(c.bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), "E2E_RUNNER=remote")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	must(t, cmd.Start())
	go func() {
		_ = cmd.Wait()
		f.Close()
		if done != nil {
			close(done)
		}
	}()
	return cmd
}

func (c *bridgeCluster) startBridge(t *testing.T, listen string) {
	t.Helper()
	ca := filepath.Join(c.dir, "ca")
	logPath := filepath.Join(c.dir, "bridge.log")
	before, _ := os.ReadFile(logPath)
	c.bridgeDone = make(chan struct{})
	c.bridge = c.start(t, "bridge", c.bridgeDone, "bridge", "--listen", listen, "--server", c.gearmand, "--key", key,
		"--tls-ca", filepath.Join(ca, "ca.crt"), "--tls-cert", filepath.Join(ca, "bridge.crt"),
		"--tls-key", filepath.Join(ca, "bridge.key"), "--authz", filepath.Join(c.dir, "authz.yaml"),
		"--resume-grace", "5s")
	rx := regexp.MustCompile(`bridge serving.* addr=(\S+)`)
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(logPath)
		if m := rx.FindSubmatch(b[len(before):]); m != nil {
			c.addr = string(m[1])
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("bridge did not start:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill kills the bridge with SIGKILL.
func (c *bridgeCluster) kill(t *testing.T) {
	t.Helper()
	_ = syscall.Kill(-c.bridge.Process.Pid, syscall.SIGKILL)
	<-c.bridgeDone
}

// restart starts the bridge again on its old address.
func (c *bridgeCluster) restart(t *testing.T) {
	t.Helper()
	c.startBridge(t, c.addr)
}
