package modgearman

import (
	"bytes"
	"crypto/aes"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

// Vectors copied from modgearman-wire.md §3.5 (and §3.1, §9).

const specKey = "should_be_changed"

// The 234-byte service job of §3.5.
const serviceJobText = "type=service\nresult_queue=check_results\ntarget_queue=service\nhost_name=localhost\nservice_description=ping\ncore_time=1700000000.000000\ntimeout=60\ncommand_line=/usr/lib/monitoring-plugins/check_ping -H 127.0.0.1 -w 100,20% -c 500,60%\n\n\n"

const serviceJobWorkload = "wuyIXMz+16Yrsk+RkDoGE1fxNhOE6U80BnfQ8yf1QP9oM0Lf9siZbtZcIRq2uwXyZ8bEzPiRAZHNNLW8Eh21F40DGE22W/9La9Ob4TnvOqp2QcIW/hAFbOxqiYPxVFfPZUcdkfSieUR8yzfSdEiKd/0Rf0FOwd1yrcyp1MyZWeoy+lPum9K5YzifUI+jY1xHHMxyeGI+SdU7oHxhoiLIONv1FBIArpSRiY7gAyTDfjBEk70zMCpHtqXlEPsXkp0ZHh7hW/Lu5IiGJeWlkOnnmzY9wXZfdPHlUHStIiwNTIUJuNsdO88/GUvaYUkUI0Ni"

// The 194-byte send_gearman passive result of §3.5.
const passiveResultText = "type=passive\nhost_name=localhost\nservice_description=ping\nstart_time=1700000000.000000\nfinish_time=1700000000.500000\nlatency=0.000000\nreturn_code=0\nsource=send_gearman\noutput=PING OK|rta=0.1ms\n\n"

const passiveResultWorkload = "wX4xVmoWBHurM1LJqPDtI40DGE22W/9La9Ob4TnvOqp2QcIW/hAFbOxqiYPxVFfPaBM+3qSO7Bi9GSqG8BnY8oDNBvU0XEye4d1j0QrSn/ns+na9xGvVJEuHigVXR7GXPSyRdgGuAydIYF5YGrmfRKh7Up8Rj9RT3MLfEMxg+oHZDBvwCzCO4LakJ+q76WY7wHl6EPUPSpJ+Rw+ZHc7M63QqJt9AAB6svsH8HADt/xV42y/h+ZjKIRjROVBGgyqS2FugQLhVyE18FJ+L8/KVnA=="

// The 255-byte Go-worker result of §3.5, with C 5.x padding (n = 256 ⇒
// extra zero block, 272 bytes) and with Go padding (one LF, 256 bytes).
const workerResultText = "type=active\nhost_name=localhost\nservice_description=ping\ncore_start_time=1700000000.000000\nstart_time=1700000000.100000\nfinish_time=1700000000.600000\nreturn_code=0\nexited_ok=1\nsource=Mod-Gearman Worker @ worker1\noutput=PING OK - rta 0.05ms|rta=0.05ms;;;0\n"

const workerResultWorkloadC5 = "C4m4NstzDThuVhAb4jdtyDFWL8uXjkgwkvyfQVOUuqeYJ7r7zwhYJHc1T4CtIsErZ/lfDbtIzoGnA3ZyuPdVzQHiWGBE2sh7djHCz+HPceg+mV6esB7IIGMFPJxnu1MjYO7hqi2LpLNGCiQ/uQN7Vtm55bmuBJJJ0yp/gwVPFuJnaAv8xxHuxH1cT8aVnvNC2Qwb8AswjuC2pCfqu+lmO/gBroL9u/OEvBL62sdkXmnGJCa88jApMqrPW2QlPnPFwGVzsFa3604n7yS21X1ib0C1xTTkHJU/0Q+SC9u7oFHXWrmieFvbw0lL2rHYhBNfggIhO9uQgvFDqoS9/MZeFjpMjls6yt3Vmm25Jd63OHA="

const workerResultWorkloadGo = "C4m4NstzDThuVhAb4jdtyDFWL8uXjkgwkvyfQVOUuqeYJ7r7zwhYJHc1T4CtIsErZ/lfDbtIzoGnA3ZyuPdVzQHiWGBE2sh7djHCz+HPceg+mV6esB7IIGMFPJxnu1MjYO7hqi2LpLNGCiQ/uQN7Vtm55bmuBJJJ0yp/gwVPFuJnaAv8xxHuxH1cT8aVnvNC2Qwb8AswjuC2pCfqu+lmO/gBroL9u/OEvBL62sdkXmnGJCa88jApMqrPW2QlPnPFwGVzsFa3604n7yS21X1ib0C1xTTkHJU/0Q+SC9u7oFHXWrmieFvbw0lL2rHYhBNfBDtmckTqyyHjp/p7n2edPw=="

// padStyle selects how a test helper pads plaintext before encryption.
type padStyle int

const (
	// padLegacy is zero fill to ceil((len+1)/16)*16 (≤4.x, what Encode does).
	padLegacy padStyle = iota
	// padC5 is the C 5.x rule: append a NUL (n = len+1); if 16 mod n ≠ 0
	// append 16 − (n mod 16) zeros, so n = 32, 48, … get a whole extra block.
	padC5
	// padGo is the Go worker's rule: no NUL; if len mod 16 ≠ 0 append
	// 16 − (len mod 16) LFs.
	padGo
)

func (s padStyle) String() string {
	return [...]string{"legacy", "c5", "go"}[s]
}

// pad returns plain padded in style s.
func pad(t testing.TB, plain []byte, s padStyle) []byte {
	t.Helper()
	buf := append([]byte(nil), plain...)
	switch s {
	case padLegacy:
		buf = append(buf, make([]byte, (len(plain)/16+1)*16-len(plain))...)
	case padC5:
		buf = append(buf, 0)
		n := len(buf)
		if 16%n != 0 {
			buf = append(buf, make([]byte, 16-n%16)...)
		}
		if len(buf)%16 != 0 {
			t.Fatalf("C 5.x cannot encrypt a %d-byte plaintext (OpenSSL fails)", len(plain))
		}
	case padGo:
		if r := len(buf) % 16; r != 0 {
			buf = append(buf, bytes.Repeat([]byte{'\n'}, 16-r)...)
		}
	}
	return buf
}

// encodeWithPadding encrypts plain padded in style s and returns the base64
// workload, as the sender using that style would.
func encodeWithPadding(t testing.TB, c *Codec, plain []byte, s padStyle) string {
	t.Helper()
	if !c.Encrypted() {
		t.Fatal("encodeWithPadding needs an encrypting codec")
	}
	buf := pad(t, plain, s)
	c.encryptBlocks(buf)
	return base64.StdEncoding.EncodeToString(buf)
}

func mustCodec(t testing.TB, key string, encrypt bool) *Codec {
	t.Helper()
	c, err := NewCodec(key, encrypt)
	if err != nil {
		t.Fatalf("NewCodec(%q, %v): %v", key, encrypt, err)
	}
	return c
}

func TestSpecKeyBytes(t *testing.T) {
	k := NewKey(specKey)
	const want = "73686f756c645f62655f6368616e676564000000000000000000000000000000"
	if got := hex.EncodeToString(k[:]); got != want {
		t.Errorf("NewKey(%q) = %s, want %s", specKey, got, want)
	}
}

// TestTypeHostSteps checks every intermediate step of the "type=host\n"
// example in §3.5.
func TestTypeHostSteps(t *testing.T) {
	plain := []byte("type=host\n")
	if got, want := hex.EncodeToString(plain), "747970653d686f73740a"; got != want {
		t.Fatalf("plaintext = %s, want %s", got, want)
	}
	padded := pad(t, plain, padC5)
	if got, want := hex.EncodeToString(padded), "747970653d686f73740a000000000000"; got != want {
		t.Errorf("padded = %s, want %s", got, want)
	}
	k := NewKey(specKey)
	block, err := aes.NewCipher(k[:])
	if err != nil {
		t.Fatal(err)
	}
	ct := make([]byte, 16)
	block.Encrypt(ct, padded)
	if got, want := hex.EncodeToString(ct), "3630974f7443c6626627a2f6fa31073c"; got != want {
		t.Errorf("AES-256-ECB = %s, want %s", got, want)
	}
	c := mustCodec(t, specKey, true)
	if got, want := string(c.Encode(plain)), "NjCXT3RDxmJmJ6L2+jEHPA=="; got != want {
		t.Errorf("Encode = %s, want %s", got, want)
	}
}

// specVector is one plaintext/workload pair of the specification.
type specVector struct {
	name     string
	key      string // "" = encryption=no
	style    padStyle
	plain    string
	workload string
	// decoded is what DecodeRaw returns when it differs from plain (LF
	// padding cannot be told from the text's own trailing LFs).
	decoded string
}

var specVectors = []specVector{
	{name: "type=host C", key: specKey, style: padC5, plain: "type=host\n", workload: "NjCXT3RDxmJmJ6L2+jEHPA=="},
	{name: "type=host Go", key: specKey, style: padGo, plain: "type=host\n", workload: "pY2VuoZoveOyD5CDxdkVoA=="},
	{name: "type=host clear", plain: "type=host\n", workload: "dHlwZT1ob3N0Cg=="},
	{name: "test message", key: specKey, style: padC5, plain: "test message", workload: "MMzUgQfTU3Hw1eyFWh454w=="},
	{name: "15 chars", key: specKey, style: padC5, plain: "0123456789abcde", workload: "c8wE6j08l2UiBuLeMVk/Sw=="},
	{name: "31 chars C 5.x quirk", key: specKey, style: padC5, plain: "0123456789abcdef0123456789abcde", workload: "iHv1GSGSbs3GWP8KfQ9rAnPMBOo9PJdlIgbi3jFZP0s6TI5bOsrd1ZptuSXetzhw"},
	{name: "service job", key: specKey, style: padC5, plain: serviceJobText, workload: serviceJobWorkload},
	{name: "passive result", key: specKey, style: padC5, plain: passiveResultText, workload: passiveResultWorkload},
	{name: "worker result C 5.x quirk", key: specKey, style: padC5, plain: workerResultText, workload: workerResultWorkloadC5},
	{name: "worker result Go", key: specKey, style: padGo, plain: workerResultText, workload: workerResultWorkloadGo},
	{name: "test1234 test message", key: "test1234", style: padC5, plain: "test message", workload: "a7HqhQEE8TQBde9uknpPYQ=="},
	{name: "test1234 14 chars", key: "test1234", style: padC5, plain: "123456789abcde", workload: "U+0gPoTCEibvwB+HaO3seA=="},
	{name: "test1234 15 chars", key: "test1234", style: padC5, plain: "123456789abcdef", workload: "uLgRxE2qLExwLvEyB7yAEw=="},
	{name: "test1234 16 chars", key: "test1234", style: padC5, plain: "123456789abcdef1", workload: "CueC0iJAZL2J+zhEPgVFVYDKd5Fmk6oJnfJnxuj7f0U="},
	{name: "test1234 17 chars", key: "test1234", style: padC5, plain: "123456789abcdef12", workload: "CueC0iJAZL2J+zhEPgVFVeiqJ0EDJEmrqx95Bewle4s="},
	{name: "test1234 18 chars", key: "test1234", style: padC5, plain: "123456789abcdef123", workload: "CueC0iJAZL2J+zhEPgVFVUPX+fNRaJ7/VNIrGRAapGQ="},
	{name: "test1234 3 lines", key: "test1234", style: padC5, plain: "test1 message\ntest2 message\ntest3 message1234567\n", workload: "lixUQN83MnLhMB6ppyNA5bUPq39eZE+8GnSWLu4JdKJN2uIjOtjjtVn8mZrXj0dLl7iWqId8FZE2j6Ej+jroEQ=="},
	{name: "base64 test", plain: "test", workload: "dGVzdA=="},
	{name: "base64 test LF", plain: "test\n", workload: "dGVzdAo="},
	{name: "base64 test message", plain: "test message", workload: "dGVzdCBtZXNzYWdl"},
	{name: "Go encrypt me please", key: "LaDPjcEqfZuKnUJStXHX27bxkHLAHSbD", style: padGo, plain: "encrypt me please", workload: "xzJEkKA+e/nBusozXOuPBz9hzIgUsEpHrZT0yo+HaPw=", decoded: "encrypt me please\n"},
}

// TestSpecVectors checks every vector in both directions: the sender's
// padding style reproduces the workload byte for byte, and DecodeRaw gives
// the plaintext back.
func TestSpecVectors(t *testing.T) {
	for _, v := range specVectors {
		t.Run(v.name, func(t *testing.T) {
			c := mustCodec(t, v.key, v.key != "")
			var got string
			if c.Encrypted() {
				got = encodeWithPadding(t, c, []byte(v.plain), v.style)
			} else {
				got = string(c.Encode([]byte(v.plain)))
			}
			if got != v.workload {
				t.Errorf("encode (%v padding):\n got %s\nwant %s", v.style, got, v.workload)
			}
			want := v.plain
			if v.decoded != "" {
				want = v.decoded
			}
			dec, err := c.DecodeRaw([]byte(v.workload))
			if err != nil {
				t.Fatalf("DecodeRaw: %v", err)
			}
			if string(dec) != want {
				t.Errorf("DecodeRaw = %q, want %q", dec, want)
			}
		})
	}
}

// TestEncodeUsesLegacyPadding checks that Encode pads by the ≤4.x rule: equal
// to the C 5.x vectors except in the quirk lengths, where it leaves out the
// extra zero block.
func TestEncodeUsesLegacyPadding(t *testing.T) {
	for _, v := range specVectors {
		if v.key == "" || v.style != padC5 {
			continue
		}
		t.Run(v.name, func(t *testing.T) {
			c := mustCodec(t, v.key, true)
			got := c.Encode([]byte(v.plain))
			if want := encodeWithPadding(t, c, []byte(v.plain), padLegacy); string(got) != want {
				t.Errorf("Encode = %s, want legacy padding %s", got, want)
			}
			raw, err := base64.StdEncoding.DecodeString(v.workload)
			if err != nil {
				t.Fatal(err)
			}
			quirk := (len(v.plain)+1)%16 == 0 && len(v.plain)+1 > 16
			wantRaw := raw
			if quirk {
				// ECB: the legacy ciphertext is the quirk ciphertext
				// without its extra all-zero block.
				wantRaw = raw[:len(raw)-16]
			}
			gotRaw, _ := base64.StdEncoding.DecodeString(string(got))
			if !bytes.Equal(gotRaw, wantRaw) {
				t.Errorf("Encode ciphertext = %x, want %x (quirk %v)", gotRaw, wantRaw, quirk)
			}
		})
	}
}

func TestSpecTextLengths(t *testing.T) {
	for _, tc := range []struct {
		name string
		text string
		n    int
	}{
		{"service job", serviceJobText, 234},
		{"passive result", passiveResultText, 194},
		{"worker result", workerResultText, 255},
	} {
		if len(tc.text) != tc.n {
			t.Errorf("%s: %d bytes, spec says %d", tc.name, len(tc.text), tc.n)
		}
	}
	for _, tc := range []struct {
		name     string
		workload string
		n        int
	}{
		{"C 5.x worker result", workerResultWorkloadC5, 272},
		{"Go worker result", workerResultWorkloadGo, 256},
		{"service job", serviceJobWorkload, 240},
		{"passive result", passiveResultWorkload, 208},
	} {
		raw, err := base64.StdEncoding.DecodeString(tc.workload)
		if err != nil || len(raw) != tc.n {
			t.Errorf("%s: ciphertext %d bytes (err %v), want %d", tc.name, len(raw), err, tc.n)
		}
	}
}

func specServiceJob() Job {
	return Job{
		Type:               JobService,
		ResultQueue:        "check_results",
		TargetQueue:        "service",
		HostName:           "localhost",
		ServiceDescription: "ping",
		CoreTime:           time.Unix(1700000000, 0).UTC(),
		Timeout:            60 * time.Second,
		CommandLine:        "/usr/lib/monitoring-plugins/check_ping -H 127.0.0.1 -w 100,20% -c 500,60%",
	}
}

// TestServiceJobVector: Marshal and Encode of the §3.5 job are byte-identical
// to the spec, and Decode + ParseJob of the workload give the job back.
func TestServiceJobVector(t *testing.T) {
	c := mustCodec(t, specKey, true)
	job := specServiceJob()
	text := job.Marshal()
	if string(text) != serviceJobText {
		t.Fatalf("Marshal:\n got %q\nwant %q", text, serviceJobText)
	}
	if got := c.Encode(text); string(got) != serviceJobWorkload {
		t.Errorf("Encode:\n got %s\nwant %s", got, serviceJobWorkload)
	}
	plain, err := c.Decode([]byte(serviceJobWorkload))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if string(plain) != serviceJobText {
		t.Errorf("Decode = %q, want %q", plain, serviceJobText)
	}
	got, err := ParseJob(plain)
	if err != nil {
		t.Fatalf("ParseJob: %v", err)
	}
	assertJobEqual(t, got, job)
}

func specPassiveResult() Result {
	return Result{
		Type:               ResultPassive,
		HostName:           "localhost",
		ServiceDescription: "ping",
		StartTime:          time.Unix(1700000000, 0).UTC(),
		FinishTime:         time.Unix(1700000000, 500000000).UTC(),
		HasLatency:         true,
		ReturnCode:         0,
		ExitedOK:           true,
		Source:             "send_gearman",
		Output:             "PING OK|rta=0.1ms",
	}
}

func TestPassiveResultVector(t *testing.T) {
	c := mustCodec(t, specKey, true)
	res := specPassiveResult()
	text := res.MarshalPassive()
	if string(text) != passiveResultText {
		t.Fatalf("MarshalPassive:\n got %q\nwant %q", text, passiveResultText)
	}
	if got := c.Encode(text); string(got) != passiveResultWorkload {
		t.Errorf("Encode:\n got %s\nwant %s", got, passiveResultWorkload)
	}
	plain, err := c.Decode([]byte(passiveResultWorkload))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	got, err := ParseResult(plain)
	if err != nil {
		t.Fatalf("ParseResult: %v", err)
	}
	assertResultEqual(t, got, res)
	if !got.IsPassive() {
		t.Error("IsPassive = false, want true")
	}
}

func specWorkerResult() Result {
	return Result{
		Type:               ResultActive,
		HostName:           "localhost",
		ServiceDescription: "ping",
		CoreStartTime:      time.Unix(1700000000, 0).UTC(),
		StartTime:          time.Unix(1700000000, 100000000).UTC(),
		FinishTime:         time.Unix(1700000000, 600000000).UTC(),
		ReturnCode:         0,
		ExitedOK:           true,
		Source:             "Mod-Gearman Worker @ worker1",
		Output:             "PING OK - rta 0.05ms|rta=0.05ms;;;0",
	}
}

func TestWorkerResultVector(t *testing.T) {
	c := mustCodec(t, specKey, true)
	res := specWorkerResult()
	text := res.Marshal()
	if string(text) != workerResultText {
		t.Fatalf("Marshal:\n got %q\nwant %q", text, workerResultText)
	}
	for _, tc := range []struct {
		style    padStyle
		workload string
	}{
		{padC5, workerResultWorkloadC5},
		{padGo, workerResultWorkloadGo},
	} {
		t.Run(tc.style.String(), func(t *testing.T) {
			if got := encodeWithPadding(t, c, text, tc.style); got != tc.workload {
				t.Errorf("encode:\n got %s\nwant %s", got, tc.workload)
			}
			plain, err := c.Decode([]byte(tc.workload))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if string(plain) != workerResultText {
				t.Errorf("Decode = %q, want %q", plain, workerResultText)
			}
			got, err := ParseResult(plain)
			if err != nil {
				t.Fatalf("ParseResult: %v", err)
			}
			assertResultEqual(t, got, res)
		})
	}
}

// TestWrappedBase64 decodes workloads wrapped at 76 columns (Perl
// MIME::Base64) with LF and CRLF line ends, including the Perl client's
// 32-byte zero padding.
func TestWrappedBase64(t *testing.T) {
	c := mustCodec(t, specKey, true)
	perl := append([]byte(serviceJobText), make([]byte, 32-len(serviceJobText)%32)...)
	c.encryptBlocks(perl)
	for _, tc := range []struct {
		name     string
		workload string
		eol      string
	}{
		{"LF", serviceJobWorkload, "\n"},
		{"CRLF", serviceJobWorkload, "\r\n"},
		{"perl padding", base64.StdEncoding.EncodeToString(perl), "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wrapped := wrap(tc.workload, 76, tc.eol)
			if !strings.Contains(wrapped, tc.eol) {
				t.Fatal("test workload is not wrapped")
			}
			got, err := c.Decode([]byte(wrapped))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if string(got) != serviceJobText {
				t.Errorf("Decode = %q, want %q", got, serviceJobText)
			}
		})
	}
	// A wrapped clear-text workload.
	plainCodec := mustCodec(t, "", false)
	clear := base64.StdEncoding.EncodeToString([]byte(serviceJobText))
	got, err := plainCodec.Decode([]byte(wrap(clear, 76, "\n")))
	if err != nil || string(got) != serviceJobText {
		t.Errorf("clear wrapped Decode = %q, %v", got, err)
	}
}

// wrap breaks s into lines of width characters, each ended by eol.
func wrap(s string, width int, eol string) string {
	var b strings.Builder
	for len(s) > width {
		b.WriteString(s[:width])
		b.WriteString(eol)
		s = s[width:]
	}
	b.WriteString(s)
	b.WriteString(eol)
	return b.String()
}

// TestCPlainResult mirrors the accept-clear test of C:t/01-utils.c: a
// plain-base64 Go-style result is read by an encrypting codec with
// accept_clear_results on.
func TestCPlainResult(t *testing.T) {
	const text = "type=active\nhost_name=hostname123\ncore_start_time=1675372834.000008\nstart_time=1675372834.000000\nfinish_time=1675372834.000000\nreturn_code=0\nexited_ok=1\nsource=Mod-Gearman Worker @ hostname123\noutput=OK - hostname123: rta 28.895ms, lost 0%|rta=28.895ms;5000.000;5000.000;0; pl=0%;100;100;; rtmax=29.057ms;;;; rtmin=28.691ms;;;;\n\n\n"
	workload := []byte(base64.StdEncoding.EncodeToString([]byte(text)))
	c := mustCodec(t, "test1234", true)
	plain, err := c.DecodeAny(workload, true)
	if err != nil {
		t.Fatalf("DecodeAny: %v", err)
	}
	for _, want := range []string{"type=active", "source=Mod-Gearman", "output=OK - hostname123"} {
		if !bytes.Contains(plain, []byte(want)) {
			t.Errorf("decoded text lacks %q", want)
		}
	}
	r, err := ParseResult(plain)
	if err != nil {
		t.Fatalf("ParseResult: %v", err)
	}
	if want := time.UnixMicro(1675372834000008).UTC(); !r.CoreStartTime.Equal(want) {
		t.Errorf("CoreStartTime = %v, want %v", r.CoreStartTime, want)
	}
}
