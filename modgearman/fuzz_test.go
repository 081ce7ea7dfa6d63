package modgearman

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzDecode feeds arbitrary workloads and texts through every decoder and
// parser. Nothing may panic; what decodes must re-encode to the same text;
// a parsed job must survive Marshal + ParseJob unchanged; marshalling a
// parsed result must be stable.
//
// Seeds: testdata/fuzz/FuzzDecode (spec §3.5 workloads and texts).
func FuzzDecode(f *testing.F) {
	enc, err := NewCodec(specKey, true)
	if err != nil {
		f.Fatal(err)
	}
	clear, err := NewCodec("", false)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, c := range []*Codec{enc, clear} {
			if raw, err := c.DecodeRaw(data); err == nil {
				checkReencode(t, c, raw)
			}
			_, _ = c.DecodeAny(data, true)
			plain, err := c.Decode(data)
			if err != nil {
				continue
			}
			if !looksLikePayload(plain) {
				t.Fatalf("Decode returned a non-payload %q", plain)
			}
			checkReencode(t, c, plain)
			checkJob(t, plain)
			checkResult(t, plain)
		}
		checkJob(t, data)
		checkResult(t, data)
	})
}

// FuzzParseJob checks ParseJob on arbitrary text: no panics, a parsed job
// has a result queue gearmand can take, and it marshals, encodes and
// decodes back to an equal job.
//
// Seeds: testdata/fuzz/FuzzParseJob.
func FuzzParseJob(f *testing.F) {
	enc, err := NewCodec(specKey, true)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		j, ok := checkJob(t, data)
		if !ok {
			return
		}
		text := j.Marshal()
		plain, err := enc.Decode(enc.Encode(text))
		if err != nil {
			t.Fatalf("Decode(Encode(%q)): %v", text, err)
		}
		if !bytes.Equal(plain, text) {
			t.Fatalf("Decode(Encode(x)) = %q, want %q", plain, text)
		}
	})
}

// checkReencode: text that decoded without error (so without NUL) encodes
// and decodes back to itself (Encode pads with NULs, never with LFs).
func checkReencode(t *testing.T, c *Codec, text []byte) {
	t.Helper()
	got, err := c.DecodeRaw(c.Encode(text))
	if err != nil {
		t.Fatalf("DecodeRaw(Encode(%q)): %v", text, err)
	}
	if !bytes.Equal(got, text) {
		t.Fatalf("DecodeRaw(Encode(x)) = %q, want %q", got, text)
	}
}

// checkJob parses data and, when that succeeds, checks the Marshal round
// trip.
func checkJob(t *testing.T, data []byte) (Job, bool) {
	t.Helper()
	j, err := ParseJob(data)
	if err != nil {
		return Job{}, false
	}
	if err := ValidQueueName(j.ResultQueue); j.ResultQueue != "" && err != nil {
		t.Fatalf("ParseJob(%q) accepted a result queue gearmand cannot take: %v", data, err)
	}
	text := j.Marshal()
	back, err := ParseJob(text)
	if err != nil {
		t.Fatalf("ParseJob(Marshal(ParseJob(%q))) = %v\nmarshalled: %q", data, err, text)
	}
	if !reflect.DeepEqual(back, j) {
		t.Fatalf("job round trip of %q:\n got %+v\nwant %+v\nmarshalled: %q", data, back, j, text)
	}
	return j, true
}

// checkResult parses data and, when that succeeds, checks that both
// marshalled forms parse and are stable under a second round.
func checkResult(t *testing.T, data []byte) {
	t.Helper()
	r, err := ParseResult(data)
	if err != nil {
		return
	}
	for name, marshal := range map[string]func(Result) []byte{
		"Marshal":        Result.Marshal,
		"MarshalPassive": Result.MarshalPassive,
	} {
		first := marshal(r)
		r2, err := ParseResult(first)
		if err != nil {
			t.Fatalf("ParseResult(%s(ParseResult(%q))) = %v\nmarshalled: %q", name, data, err, first)
		}
		if second := marshal(r2); !bytes.Equal(first, second) {
			t.Fatalf("%s not stable for %q:\n first %q\nsecond %q", name, data, first, second)
		}
	}
}
