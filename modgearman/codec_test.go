package modgearman

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestNewCodec(t *testing.T) {
	if _, err := NewCodec("", true); !errors.Is(err, ErrNoKey) {
		t.Errorf("NewCodec(\"\", true) error = %v, want ErrNoKey", err)
	}
	c, err := NewCodec("", false)
	if err != nil || c.Encrypted() {
		t.Errorf("NewCodec(\"\", false) = %v, %v; want a clear codec", c, err)
	}
	c, err = NewCodec("ignored", false)
	if err != nil || c.Encrypted() {
		t.Errorf("NewCodec(key, false) = encrypted %v, %v; want a clear codec", c.Encrypted(), err)
	}
	if c := mustCodec(t, "k", true); !c.Encrypted() {
		t.Error("NewCodec(key, true) does not encrypt")
	}
}

// TestEncodeLengths checks the ceil((len+1)/16)*16 rule for every length
// around block boundaries, including the lengths 5.x cannot encrypt.
func TestEncodeLengths(t *testing.T) {
	c := mustCodec(t, specKey, true)
	for n := 0; n <= 64; n++ {
		plain := bytes.Repeat([]byte("a"), n)
		w := c.Encode(plain)
		if bytes.ContainsAny(w, "\r\n") {
			t.Fatalf("len %d: workload contains a line break", n)
		}
		raw, err := base64.StdEncoding.DecodeString(string(w))
		if err != nil {
			t.Fatalf("len %d: workload is not std base64: %v", n, err)
		}
		if want := (n + 16) / 16 * 16; len(raw) != want {
			t.Errorf("len %d: ciphertext %d bytes, want %d", n, len(raw), want)
		}
		got, err := c.DecodeRaw(w)
		if err != nil || !bytes.Equal(got, plain) {
			t.Errorf("len %d: DecodeRaw = %q, %v", n, got, err)
		}
	}
}

func TestRoundTripAllPaddings(t *testing.T) {
	c := mustCodec(t, specKey, true)
	for _, text := range []string{serviceJobText, passiveResultText, workerResultText, "type=host\nhost_name=h\ncommand_line=c\n"} {
		for _, s := range []padStyle{padLegacy, padGo} {
			w := encodeWithPadding(t, c, []byte(text), s)
			got, err := c.Decode([]byte(w))
			if err != nil {
				t.Fatalf("%v padding: Decode: %v", s, err)
			}
			// LF padding can only be undone down to one trailing LF.
			want := text
			if s == padGo {
				want = strings.TrimRight(text, "\n") + "\n"
			}
			if string(got) != want {
				t.Errorf("%v padding: Decode = %q, want %q", s, got, want)
			}
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	enc := mustCodec(t, specKey, true)
	clear := mustCodec(t, "", false)
	serviceRaw, _ := base64.StdEncoding.DecodeString(serviceJobWorkload)
	b64 := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
	for _, tc := range []struct {
		name     string
		codec    *Codec
		workload string
		want     error
	}{
		{"invalid base64 !!!!", enc, "!!!!", ErrBase64},
		{"invalid base64 clear", clear, "!!!!", ErrBase64},
		{"base64 with inner padding", enc, "NjCXT3RDxmJmJ6L2+jEHPA==NjCXT3RDxmJmJ6L2+jEHPA==", ErrBase64},
		{"base64 one char over a quantum", enc, "NjCXT3RDxmJmJ6L2+jEHP", ErrBase64},
		{"empty workload", enc, "", ErrBlockSize},
		{"only whitespace", enc, " \r\n\t", ErrBlockSize},
		{"truncated ciphertext", enc, b64(serviceRaw[:len(serviceRaw)-5]), ErrBlockSize},
		{"truncated by one byte", enc, b64(serviceRaw[:len(serviceRaw)-1]), ErrBlockSize},
		{"short", enc, b64([]byte{0}), ErrBlockSize},
		{"extra non-zero bytes", enc, b64(append(append([]byte{}, serviceRaw...), 1)), ErrBlockSize},
		{"wrong key", mustCodec(t, "another key", true), serviceJobWorkload, ErrNotPayload},
		{"key for 48 bytes of clear text", enc, b64([]byte("type=host\nhost_name=h\ncommand_line=/bin/true -v\n")), ErrNotPayload},
		{"clear codec on ciphertext", clear, serviceJobWorkload, ErrNotPayload},
		{"clear text not key=value", clear, "dGVzdCBtZXNzYWdl", ErrNotPayload},
		{"clear empty", clear, "", ErrNotPayload},
		{"clear upper-case key", clear, b64([]byte("TYPE=host\n")), ErrNotPayload},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.codec.Decode([]byte(tc.workload))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode = %q, %v; want error %v", got, err, tc.want)
			}
			if got != nil {
				t.Errorf("Decode returned %q with the error", got)
			}
		})
	}
}

func TestWrongKeyMessage(t *testing.T) {
	c := mustCodec(t, "not the key", true)
	_, err := c.Decode([]byte(serviceJobWorkload))
	if !errors.Is(err, ErrNotPayload) {
		t.Fatalf("error = %v, want ErrNotPayload", err)
	}
	for _, want := range []string{"wrong key", "not a Mod-Gearman payload"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// The garbage plaintext must not leak into the message.
	if strings.ContainsRune(err.Error(), '\uFFFD') || len(err.Error()) > 200 {
		t.Errorf("error message looks like it contains plaintext: %q", err)
	}
}

// TestDecodePaddingTolerance: missing or wrong '=' padding, and the extra
// zero bytes that C's EVP_DecodeBlock produces from '=' padding.
func TestDecodePaddingTolerance(t *testing.T) {
	c := mustCodec(t, specKey, true)
	raw, _ := base64.StdEncoding.DecodeString(serviceJobWorkload)
	for _, tc := range []struct{ name, workload string }{
		{"as is", serviceJobWorkload},
		{"missing padding", strings.TrimRight(passiveResultWorkload, "=")},
		{"too much padding", passiveResultWorkload + "=="},
		{"one zero byte extra", base64.StdEncoding.EncodeToString(append(append([]byte{}, raw...), 0))},
		{"two zero bytes extra", base64.StdEncoding.EncodeToString(append(append([]byte{}, raw...), 0, 0))},
		{"surrounding whitespace", "  " + serviceJobWorkload + "\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.Decode([]byte(tc.workload))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !bytes.HasPrefix(got, []byte("type=")) {
				t.Errorf("Decode = %q", got)
			}
		})
	}
	three := base64.StdEncoding.EncodeToString(append(append([]byte{}, raw...), 0, 0, 0))
	if _, err := c.Decode([]byte(three)); !errors.Is(err, ErrBlockSize) {
		t.Errorf("three extra zero bytes: error %v, want ErrBlockSize", err)
	}
}

func TestDecodeAny(t *testing.T) {
	enc := mustCodec(t, specKey, true)
	clearResult := base64.StdEncoding.EncodeToString([]byte(workerResultText))
	cWorkerClear := base64.StdEncoding.EncodeToString([]byte("host_name=h\noutput=x\n\n\n\n"))
	// A clear payload whose length is a multiple of 16, so that the key is
	// actually tried on it.
	clear16 := base64.StdEncoding.EncodeToString([]byte("type=passive\nhost_name=h\noutput=abcdef\n")[:32])

	for _, tc := range []struct {
		name        string
		workload    string
		acceptClear bool
		want        string
		wantErr     error
	}{
		{"encrypted, accept clear", serviceJobWorkload, true, serviceJobText, nil},
		{"encrypted, clear refused", serviceJobWorkload, false, serviceJobText, nil},
		{"clear accepted", clearResult, true, workerResultText, nil},
		{"clear 32 bytes accepted", clear16, true, "type=passive\nhost_name=h\noutput=", nil},
		{"clear refused", clearResult, false, "", ErrBlockSize},
		{"clear without type= first is not recognised", cWorkerClear, true, "", ErrBlockSize},
		{"garbage", "!!!!", true, "", ErrBase64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := enc.DecodeAny([]byte(tc.workload), tc.acceptClear)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("DecodeAny = %q, %v; want error %v", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Errorf("DecodeAny = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	// With encryption off DecodeAny is Decode.
	clear := mustCodec(t, "", false)
	if got, err := clear.DecodeAny([]byte(clearResult), false); err != nil || string(got) != workerResultText {
		t.Errorf("clear codec DecodeAny = %q, %v", got, err)
	}
}

// TestDecodeNeverPanics feeds odd inputs through every decode path; the
// fuzz targets cover the rest.
func TestDecodeNeverPanics(t *testing.T) {
	codecs := []*Codec{mustCodec(t, specKey, true), mustCodec(t, "", false)}
	inputs := [][]byte{nil, {}, {0}, []byte("="), []byte("===="), []byte("A"), []byte("AA"), []byte("AAA="),
		bytes.Repeat([]byte("A"), 22), bytes.Repeat([]byte("/"), 1000), []byte("\xff\xfe"), []byte("dHlwZT0=")}
	for _, c := range codecs {
		for _, in := range inputs {
			_, _ = c.Decode(in)
			_, _ = c.DecodeRaw(in)
			_, _ = c.DecodeAny(in, true)
			_, _ = ParseJob(in)
			_, _ = ParseResult(in)
		}
	}
}

// TestCodecConcurrent runs Encode and Decode from several goroutines; run
// with -race.
func TestCodecConcurrent(t *testing.T) {
	c := mustCodec(t, specKey, true)
	done := make(chan error)
	for range 8 {
		go func() {
			for range 100 {
				got, err := c.Decode(c.Encode([]byte(serviceJobText)))
				if err == nil && string(got) != serviceJobText {
					err = errors.New("mismatch")
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	c := mustCodec(b, specKey, true)
	plain := []byte(serviceJobText)
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	for b.Loop() {
		c.Encode(plain)
	}
}

func BenchmarkDecode(b *testing.B) {
	c := mustCodec(b, specKey, true)
	w := []byte(serviceJobWorkload)
	b.SetBytes(int64(len(serviceJobText)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Decode(w); err != nil {
			b.Fatal(err)
		}
	}
}
