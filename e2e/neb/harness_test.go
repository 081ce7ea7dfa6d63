package nebe2e

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// layouts are the two builds of the module.
var layouts = []struct {
	name string
	api  int
	tags string
}{
	{"naemon", 8, ""},
	{"nagios4", 4, "nagios4"},
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// artifacts builds both modules and both fake cores once per test binary.
func artifacts(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("SKIP: gcc not installed; the broker module needs cgo")
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "gearbridge-neb-e2e")
		if buildErr != nil {
			return
		}
		root := repoRoot()
		gb := exec.Command("go", "build", "-o", filepath.Join(buildDir, "gearbridge"), "./cmd/gearbridge")
		gb.Dir = root
		if out, err := gb.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build gearbridge: %v\n%s", err, out)
			return
		}
		for _, l := range layouts {
			args := []string{"build", "-buildmode=c-shared", "-o", filepath.Join(buildDir, "mod_"+l.name+".so")}
			if l.tags != "" {
				args = append(args, "-tags", l.tags)
			}
			cmd := exec.Command("go", append(args, "./cmd/gearbridge-neb")...)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("build %s: %v\n%s", l.name, err, out)
				return
			}
			cc := exec.Command("gcc", "-Wall", "-Werror", "-O2", fmt.Sprintf("-DAPI=%d", l.api), "-rdynamic",
				"-o", filepath.Join(buildDir, "fakecore_"+l.name),
				filepath.Join(root, "cmd/gearbridge-neb/testdata/fakecore.c"), "-ldl")
			if out, err := cc.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("compile fake core %s: %v\n%s", l.name, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildDir
}

// fakeCore drives one fakecore process.
type fakeCore struct {
	t     *testing.T
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
	log   []string
	mu    sync.Mutex
}

func startFakeCore(t *testing.T, layout, args string) *fakeCore {
	t.Helper()
	dir := artifacts(t)
	cmd := exec.Command(filepath.Join(dir, "fakecore_"+layout), filepath.Join(dir, "mod_"+layout+".so"), args)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	fc := &fakeCore{t: t, cmd: cmd, in: in, lines: make(chan string, 100000)}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			fc.lines <- sc.Text()
		}
		close(fc.lines)
	}()
	t.Cleanup(func() {
		_ = in.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			fc.mu.Lock()
			t.Logf("fake core output:\n%s", strings.Join(fc.log, "\n"))
			fc.mu.Unlock()
		}
	})
	fc.expect("READY")
	return fc
}

func (fc *fakeCore) send(format string, a ...any) {
	fc.t.Helper()
	if _, err := fmt.Fprintf(fc.in, format+"\n", a...); err != nil {
		fc.t.Fatal(err)
	}
}

// expect returns the next line starting with prefix; RESULT lines that are
// skipped on the way are kept for results().
func (fc *fakeCore) expect(prefix string) string {
	fc.t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-fc.lines:
			if !ok {
				fc.t.Fatalf("fake core exited while waiting for %q", prefix)
			}
			fc.mu.Lock()
			fc.log = append(fc.log, l)
			fc.mu.Unlock()
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-timeout:
			fc.t.Fatalf("timeout waiting for %q", prefix)
		}
	}
}

// do sends a command and returns the line answering it.
func (fc *fakeCore) do(prefix, format string, a ...any) string {
	fc.t.Helper()
	fc.send(format, a...)
	return fc.expect(prefix)
}

// results returns the RESULT lines seen so far, parsed, and forgets them.
func (fc *fakeCore) results() []map[string]string {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	var rs []map[string]string
	var keep []string
	for _, l := range fc.log {
		if !strings.HasPrefix(l, "RESULT ") {
			keep = append(keep, l)
			continue
		}
		rs = append(rs, parseResult(l))
	}
	fc.log = keep
	return rs
}

func parseResult(l string) map[string]string {
	m := map[string]string{}
	rest := strings.TrimPrefix(l, "RESULT ")
	if i := strings.Index(rest, " output="); i >= 0 {
		m["output"] = rest[i+len(" output="):]
		rest = rest[:i]
	}
	for _, f := range strings.Fields(rest) {
		k, v, _ := strings.Cut(f, "=")
		m[k] = v
	}
	return m
}
