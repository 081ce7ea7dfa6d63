package worker

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/credentials/insecure"
)

func validConfig() Config {
	cfg := DefaultConfig()
	cfg.Bridges = []string{"bridge.example:4731"}
	cfg.Identifier = "w1"
	cfg.Queues = []string{"service"}
	return cfg
}

func TestDefaultConfig(t *testing.T) {
	cfg := DefaultConfig()
	if cfg.Slots != 20 || cfg.JobTimeout != 60*time.Second || cfg.TimeoutReturn != 2 || !cfg.ShowErrorOutput ||
		cfg.OutputCap != 1<<20 || cfg.DrainTimeout != 30*time.Second || cfg.BackoffMax != 2*time.Second || cfg.MaxAge != 0 {
		t.Fatalf("defaults %+v", cfg)
	}
	if err := validConfig().Validate(); err != nil {
		t.Fatalf("defaults plus bridge, identifier and queue: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"no bridge", func(c *Config) { c.Bridges = nil }, "bridge: at least one"},
		{"empty bridge", func(c *Config) { c.Bridges = []string{""} }, "bridge: empty"},
		{"no identifier", func(c *Config) { c.Identifier = "" }, "identifier"},
		{"long identifier", func(c *Config) { c.Identifier = strings.Repeat("x", 257) }, "identifier"},
		{"identifier gearmand would cut", func(c *Config) { c.Identifier = strings.Repeat("x", 128) }, "identifier"},
		{"identifier with a space", func(c *Config) { c.Identifier = "my worker" }, "identifier"},
		{"identifier not UTF-8", func(c *Config) { c.Identifier = "w\xe9" }, "not UTF-8"},
		{"queue not UTF-8", func(c *Config) { c.Queues = []string{"hostgroup_\xe9t\xe9"} }, "not UTF-8"},
		{"queue with a line end", func(c *Config) { c.Queues = []string{"host\ngroup"} }, "control character"},
		{"no queue", func(c *Config) { c.Queues = nil }, "at least one queue"},
		{"empty queue", func(c *Config) { c.Queues = []string{""} }, "empty or longer"},
		{"duplicate queue", func(c *Config) { c.Queues = []string{"host", "host"} }, "listed twice"},
		{"no slots", func(c *Config) { c.Slots = 0 }, "max-workers"},
		{"job timeout", func(c *Config) { c.JobTimeout = 0 }, "job-timeout"},
		{"max age", func(c *Config) { c.MaxAge = -time.Second }, "max-age"},
		{"load limit", func(c *Config) { c.LoadLimit5 = -1 }, "load-limit5"},
		{"load interval", func(c *Config) { c.LoadLimit1 = 3; c.LoadInterval = 0 }, "load-interval"},
		{"output cap", func(c *Config) { c.OutputCap = 0 }, "output-cap"},
		{"timeout return", func(c *Config) { c.TimeoutReturn = 4 }, "timeout-return"},
		{"restrict path", func(c *Config) { c.RestrictPath = []string{"usr/lib"} }, "restrict-path"},
		{"drain timeout", func(c *Config) { c.DrainTimeout = 0 }, "drain-timeout"},
		{"backoff", func(c *Config) { c.BackoffMax = c.BackoffMin / 2 }, "backoff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := validConfig()
			tt.change(&cfg)
			before := cfg.Identifier
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.want)
			}
			if cfg.Identifier != before {
				t.Fatal("Validate changed the config")
			}
		})
	}
}

func TestNew(t *testing.T) {
	if _, err := New(validConfig(), Deps{}); err == nil || !strings.Contains(err.Error(), "credentials") {
		t.Fatalf("New without credentials: %v", err)
	}
	bad := validConfig()
	bad.Queues = nil
	if _, err := New(bad, Deps{Credentials: insecure.NewCredentials()}); err == nil || !strings.Contains(err.Error(), "worker config") {
		t.Fatalf("New with a bad config: %v", err)
	}
	if _, err := New(validConfig(), Deps{Credentials: insecure.NewCredentials()}); err != nil {
		t.Fatalf("New: %v", err)
	}
}

func TestBackoff(t *testing.T) {
	b := newRetryBackoff(100*time.Millisecond, 2*time.Second)
	steps := []time.Duration{100, 200, 400, 800, 1600, 2000, 2000}
	for i, step := range steps {
		step *= time.Millisecond
		d := b.next()
		if d < step/2 || d > step {
			t.Fatalf("attempt %d: pause %v outside [%v, %v]", i, d, step/2, step)
		}
	}
	b.reset()
	if d := b.next(); d > 100*time.Millisecond {
		t.Fatalf("after reset: %v", d)
	}
}
