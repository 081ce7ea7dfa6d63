package worker

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testPlugins are plugin scripts in a temporary directory. Gated plugins
// report their start through a FIFO and run until the test releases them.
type testPlugins struct {
	t       *testing.T
	dir     string
	started chan startedPlugin
}

type startedPlugin struct {
	id  string
	pid int
}

// newTestPlugins writes the scripts. All of them are written before any
// plugin runs: writing an executable while another goroutine forks can make
// exec fail with ETXTBSY.
func newTestPlugins(t *testing.T) *testPlugins {
	t.Helper()
	dir := t.TempDir()
	p := &testPlugins{t: t, dir: dir, started: make(chan startedPlugin, 10)}
	scripts := map[string]string{
		// Multi-line output with perfdata, exit 0.
		"ok.sh": "#!/bin/sh\nprintf 'OK - fine|a=1\\nsecond line\\n'\nexit 0\n",
		// Writes to stderr and exits 2.
		"crit.sh": "#!/bin/sh\necho 'CRITICAL - broken'\necho 'details' >&2\nexit 2\n",
		// Leaves a marker, to prove that it ran.
		"touch.sh": "#!/bin/sh\ntouch \"" + filepath.Join(dir, "touched") + "\"\necho OK\n",
		// gated.sh ID [RC]: reports "ID PID" on the FIFO, then waits for
		// the file release.ID.
		"gated.sh": "#!/bin/sh\necho \"$1 $$\" > \"" + filepath.Join(dir, "started") + "\"\n" +
			"while [ ! -e \"" + dir + "/release.$1\" ]; do sleep 0.01; done\n" +
			"echo \"done $1\"\nexit ${2:-0}\n",
	}
	for name, body := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fifo := filepath.Join(dir, "started")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// Read-write, so that the FIFO never reports end of file between
	// writers and writers never block.
	f, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			id, pidText, _ := strings.Cut(sc.Text(), " ")
			pid, _ := strconv.Atoi(pidText)
			p.started <- startedPlugin{id: id, pid: pid}
		}
	}()
	t.Cleanup(func() {
		f.Close()
		<-done
	})
	return p
}

// cmd is the command line of script with arguments.
func (p *testPlugins) cmd(script string, args ...string) string {
	return strings.Join(append([]string{filepath.Join(p.dir, script)}, args...), " ")
}

// waitStarted returns the next gated plugin that started.
func (p *testPlugins) waitStarted() startedPlugin {
	p.t.Helper()
	select {
	case s := <-p.started:
		return s
	case <-time.After(waitTimeout):
		p.t.Fatal("no gated plugin started")
		return startedPlugin{}
	}
}

// noneStarted checks that no gated plugin starts within d. It is the one
// place these tests wait for something not to happen.
func (p *testPlugins) noneStarted(d time.Duration) {
	p.t.Helper()
	select {
	case s := <-p.started:
		p.t.Fatalf("plugin %s started, want it to wait for a slot", s.id)
	case <-time.After(d):
	}
}

// release lets gated plugin id finish.
func (p *testPlugins) release(id string) {
	p.t.Helper()
	if err := os.WriteFile(filepath.Join(p.dir, "release."+id), nil, 0o600); err != nil {
		p.t.Fatal(err)
	}
}

func (p *testPlugins) touched() bool {
	_, err := os.Stat(filepath.Join(p.dir, "touched"))
	return err == nil
}

// processGone reports whether pid no longer exists. The plugin runner reaps
// its plugins before it returns, so this holds once the worker freed the
// slot.
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
