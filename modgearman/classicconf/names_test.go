package classicconf

import (
	"errors"
	"slices"
	"testing"
)

func TestOptionName(t *testing.T) {
	tests := []struct {
		key        string
		name       string
		needsValue bool
	}{
		{"job_timeout", "job_timeout", true},
		{"job-timeout", "job_timeout", true},
		{"JOB_TIMEOUT", "job_timeout", true},
		{"max-worker", "max-worker", true},
		{"max_worker", "max-worker", true},
		{"hosts", "hosts", false},
		{"eventhandlers", "eventhandler", false},
		{"d", "d", false},
		{"daemon", "daemon", false},
		{"show-error-output", "show_error_output", false},
		{"workaround-rc-25", "workaround_rc_25", false},
		{"config", "config", true},
		{"m", "message", true},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			name, needsValue, err := OptionName(tt.key)
			if err != nil || name != tt.name || needsValue != tt.needsValue {
				t.Fatalf("OptionName(%q) = %q, %v, %v; want %q, %v", tt.key, name, needsValue, err, tt.name, tt.needsValue)
			}
		})
	}
	if _, _, err := OptionName("max-wrokers"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("unknown key: err %v, want ErrUnknownKey", err)
	}
}

func TestChangedOptions(t *testing.T) {
	if got := ChangedOptions(Defaults()); len(got) != 0 {
		t.Fatalf("defaults: %q", got)
	}
	c, err := ParseArgs([]string{"--max-worker=20", "--spawn-rate=3", "--hosts", "--server=gm:4730", "-d"})
	if err != nil {
		t.Fatal(err)
	}
	// max-worker=20 is the default and not listed.
	want := []string{"server", "hosts", "daemon", "spawn-rate"}
	if got := ChangedOptions(c); !slices.Equal(got, want) {
		t.Fatalf("ChangedOptions = %q, want %q", got, want)
	}
}

func TestOptionNamesResolve(t *testing.T) {
	names := OptionNames()
	if len(names) < 80 || slices.Contains(names, "config") || slices.Contains(names, "d") {
		t.Fatalf("OptionNames = %q", names)
	}
	for _, n := range names {
		if got, _, err := OptionName(n); err != nil || got != n {
			t.Errorf("OptionName(%q) = %q, %v", n, got, err)
		}
	}
}
