package e2e

import (
	"bytes"
	"context"
	"maps"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/modgearman"
)

// latin1Plugin prints two lines of Latin-1 text (invalid UTF-8), the second
// one with the plugin's first argument, and exits 0.
const latin1Plugin = `#!/bin/sh
printf 'caf\351 \344\366\374 OK|t=1\nArgument %s\n' "$1"
exit 0
`

// blobPlugin prints the file next to it byte for byte and exits 0.
const blobPlugin = `#!/bin/sh
exec cat "$(dirname "$0")/blob.bin"
`

// binaryBlob is every byte from 0x01 to 0xff except LF: no NUL (a classic
// receiver reads the payload as a C string) and no LF (the only byte the
// wire format escapes). It starts and ends with bytes the worker does not
// trim.
func binaryBlob() []byte {
	var b []byte
	for c := 0x01; c <= 0xff; c++ {
		if c != '\n' {
			b = append(b, byte(c))
		}
	}
	return b
}

// TestLatin1BytesEndToEnd runs checks whose names, command line and output
// are not UTF-8 through gearmand, the bridge and a remote worker over gRPC,
// and decrypts the results with openssl, independently of our codec: the
// result payload carries exactly the bytes of the job and of the plugin, as
// a classic worker writes them (only LF escaped, as backslash-'n').
func TestLatin1BytesEndToEnd(t *testing.T) {
	c := newCluster(t)
	latin1, blob := filepath.Join(c.dir, "check_latin1"), filepath.Join(c.dir, "check_blob")
	writeFile(t, latin1, latin1Plugin, 0o755)
	writeFile(t, blob, blobPlugin, 0o755)
	writeFile(t, filepath.Join(c.dir, "blob.bin"), string(binaryBlob()), 0o644)
	_, baddr := c.startBridge("bridge", "127.0.0.1:0")
	c.startWorker("w1", baddr, "--services", "--max-workers", "2")

	checks := []struct {
		name    string
		host    string
		service string
		command string
		// output is the output= line as it must be on the wire.
		output string
	}{
		{
			name:    "latin1",
			host:    "h\xf4te-\xe9t\xe9",
			service: "Disk \xe9t\xe9",
			command: latin1 + " \xe9t\xe9",
			output:  "caf\xe9 \xe4\xf6\xfc OK|t=1\\nArgument \xe9t\xe9",
		},
		{
			name:    "binary",
			host:    "blob-\xff",
			service: "Bin\xe4r",
			command: blob,
			output:  string(binaryBlob()),
		},
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	core := time.Unix(1700000000, 250000000)
	for _, ck := range checks {
		c.submit(ctx, "service", modgearman.Job{
			Type: modgearman.JobService, ResultQueue: "check_results", TargetQueue: "service",
			HostName: ck.host, ServiceDescription: ck.service,
			CoreTime: core, Timeout: 20 * time.Second, CommandLine: ck.command,
		})
	}
	// A session broken by the bytes would leave the queue unanswered, so
	// the wait is short.
	results := c.collect("check_results", len(checks), 30*time.Second)

	byHost := map[string][]byte{}
	for _, r := range results {
		plain := []byte(opensslDecrypt(t, r.raw))
		host, ok := lineValue(plain, "host_name")
		if !ok {
			t.Fatalf("result without host_name line: %q", plain)
		}
		if _, dup := byHost[string(host)]; dup {
			t.Fatalf("two results for host %q", host)
		}
		byHost[string(host)] = plain
	}
	for _, ck := range checks {
		t.Run(ck.name, func(t *testing.T) {
			plain, ok := byHost[ck.host]
			if !ok {
				t.Fatalf("no result for host %q; results for %q", ck.host, slices.Collect(maps.Keys(byHost)))
			}
			for _, want := range []struct{ key, value string }{
				{"host_name", ck.host},
				{"service_description", ck.service},
				{"return_code", "0"},
				{"exited_ok", "1"},
				{"output", ck.output},
			} {
				got, ok := lineValue(plain, want.key)
				if !ok {
					t.Errorf("no %s= line in %q", want.key, plain)
					continue
				}
				if !bytes.Equal(got, []byte(want.value)) {
					t.Errorf("%s=\n got % x\nwant % x", want.key, got, want.value)
				}
			}
			// output= is the last line: a classic parser stops at the
			// first empty line, so nothing but padding may follow it.
			lines := bytes.Split(bytes.TrimRight(plain, "\x00\n"), []byte("\n"))
			if last := lines[len(lines)-1]; !bytes.Equal(last, []byte("output="+ck.output)) {
				t.Errorf("last line is %q, want the output line", last)
			}
		})
	}
}

// lineValue returns the raw value of the first key= line of a payload
// plaintext, reading lines the way the classic NEB does: up to the first
// NUL or empty line.
func lineValue(plain []byte, key string) ([]byte, bool) {
	if i := bytes.IndexByte(plain, 0); i >= 0 {
		plain = plain[:i]
	}
	for line := range bytes.SplitSeq(plain, []byte("\n")) {
		if len(line) == 0 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte(key+"=")); ok {
			return v, true
		}
	}
	return nil, false
}
