package modgearman

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"os/exec"
	"testing"
)

// opensslECB runs `openssl enc -aes-256-ecb -nopad` as an independent AES
// oracle (spec appendix); op is "-e" or "-d".
func opensslECB(t *testing.T, key string, op string, in []byte) []byte {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl is not on PATH; skipping the AES oracle test (install openssl to run it)")
	}
	k := NewKey(key)
	cmd := exec.CommandContext(t.Context(), path, "enc", op, "-aes-256-ecb", "-nopad", "-K", hex.EncodeToString(k[:]))
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl enc %s: %v: %s", op, err, stderr.Bytes())
	}
	return out
}

func TestOpenSSLOracle(t *testing.T) {
	for _, key := range []string{specKey, "test1234", "LaDPjcEqfZuKnUJStXHX27bxkHLAHSbD", "a key longer than thirty-two bytes is cut"} {
		t.Run(key, func(t *testing.T) {
			c := mustCodec(t, key, true)

			// openssl decrypts what Encode produced.
			raw, err := base64.StdEncoding.DecodeString(string(c.Encode([]byte(serviceJobText))))
			if err != nil {
				t.Fatal(err)
			}
			got := opensslECB(t, key, "-d", raw)
			if want := pad(t, []byte(serviceJobText), padLegacy); !bytes.Equal(got, want) {
				t.Errorf("openssl decryption of Encode output:\n got %q\nwant %q", got, want)
			}

			// Decode reads what openssl encrypted, with NUL and LF padding.
			for _, s := range []padStyle{padLegacy, padC5, padGo} {
				ct := opensslECB(t, key, "-e", pad(t, []byte(workerResultText), s))
				plain, err := c.Decode([]byte(base64.StdEncoding.EncodeToString(ct)))
				if err != nil {
					t.Fatalf("%v padding: Decode of openssl output: %v", s, err)
				}
				if string(plain) != workerResultText {
					t.Errorf("%v padding: Decode of openssl output = %q", s, plain)
				}
			}
		})
	}
}
