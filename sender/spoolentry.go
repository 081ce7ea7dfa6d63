package sender

import (
	"bytes"
	"encoding/json"
	"errors"
	"time"
	"unicode/utf8"
)

// spoolEntry is the content of one spool file.
type spoolEntry struct {
	Created time.Time
	Results []Result
	// Reasons are set for files in dead/: why each result is there.
	Reasons []string
}

// spoolFile is how a spoolEntry is written: one JSON object per file.
type spoolFile struct {
	Created time.Time     `json:"created"`
	Results []spoolResult `json:"results"`
	Reasons []spoolText   `json:"reasons,omitempty"`
}

// spoolResult is a Result as the spool writes it. It has the fields and
// JSON names of every entry written before the spool kept bytes, so that
// entries of an older version are read as they were written.
type spoolResult struct {
	Host       spoolText     `json:"host"`
	Service    spoolText     `json:"service,omitempty"`
	ReturnCode int           `json:"rc"`
	Output     spoolText     `json:"output"`
	Start      time.Time     `json:"start"`
	Finish     time.Time     `json:"finish"`
	Latency    time.Duration `json:"latency,omitempty"`
	Active     bool          `json:"active,omitempty"`
	Source     spoolText     `json:"source,omitempty"`
}

// spoolText is a string of bytes that need not be UTF-8 (host names,
// service descriptions and plugin output often are ISO-8859-1). Valid
// UTF-8 is written as a JSON string, as before; anything else as
// {"base64":"…"}, because a JSON string would have its invalid bytes
// replaced with U+FFFD. (An older version reading such an entry fails on
// the object and moves the entry to dead/ untouched, rather than delivering
// altered text.)
type spoolText string

// spoolBytes is the form of a spoolText that is not UTF-8.
type spoolBytes struct {
	Base64 *[]byte `json:"base64"`
}

func (s spoolText) MarshalJSON() ([]byte, error) {
	if utf8.ValidString(string(s)) {
		return json.Marshal(string(s))
	}
	b := []byte(s)
	return json.Marshal(spoolBytes{Base64: &b})
}

func (s *spoolText) UnmarshalJSON(data []byte) error {
	if len(data) == 0 || data[0] != '{' {
		var str string
		if err := json.Unmarshal(data, &str); err != nil {
			return err
		}
		*s = spoolText(str)
		return nil
	}
	var v spoolBytes
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return err
	}
	if v.Base64 == nil {
		return errors.New("spool text object without base64")
	}
	*s = spoolText(*v.Base64)
	return nil
}

// encodeEntry returns the file content of ent.
func encodeEntry(ent spoolEntry) ([]byte, error) {
	f := spoolFile{Created: ent.Created, Results: make([]spoolResult, len(ent.Results))}
	for i, r := range ent.Results {
		f.Results[i] = spoolResult{
			Host: spoolText(r.Host), Service: spoolText(r.Service), ReturnCode: r.ReturnCode, Output: spoolText(r.Output),
			Start: r.Start, Finish: r.Finish, Latency: r.Latency, Active: r.Active, Source: spoolText(r.Source),
		}
	}
	for _, reason := range ent.Reasons {
		f.Reasons = append(f.Reasons, spoolText(reason))
	}
	data, err := json.Marshal(f)
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// decodeEntry reads the file content of an entry, in the current form or
// in the form of older versions (JSON strings only).
func decodeEntry(data []byte) (spoolEntry, error) {
	var f spoolFile
	if err := json.Unmarshal(data, &f); err != nil {
		return spoolEntry{}, err
	}
	ent := spoolEntry{Created: f.Created}
	for _, r := range f.Results {
		ent.Results = append(ent.Results, Result{
			Host: string(r.Host), Service: string(r.Service), ReturnCode: r.ReturnCode, Output: string(r.Output),
			Start: r.Start, Finish: r.Finish, Latency: r.Latency, Active: r.Active, Source: string(r.Source),
		})
	}
	for _, reason := range f.Reasons {
		ent.Reasons = append(ent.Reasons, string(reason))
	}
	return ent, nil
}
