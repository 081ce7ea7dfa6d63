package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

type sample struct {
	Servers     []string      `mapstructure:"server"`
	Listen      string        `mapstructure:"listen"`
	Slots       int           `mapstructure:"slots"`
	ResumeGrace time.Duration `mapstructure:"resume-grace"`
	Encryption  bool          `mapstructure:"encryption"`
	Identifier  string        `mapstructure:"identifier"`
}

func defaults() sample {
	return sample{Servers: []string{"localhost:4730"}, Listen: ":4731", Slots: 4, ResumeGrace: 30 * time.Second, Encryption: true}
}

func flagSet(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.StringSlice("server", nil, "")
	fs.String("listen", ":4731", "")
	fs.Int("slots", 4, "")
	fs.Duration("resume-grace", 30*time.Second, "")
	fs.String("encryption", "yes", "")
	fs.String("identifier", "", "")
	fs.String("unrelated", "", "")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs
}

func TestLoadDefaultsOnly(t *testing.T) {
	cfg := defaults()
	if err := Load(&cfg, "", flagSet(t)); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, defaults()) {
		t.Fatalf("got %+v, want defaults", cfg)
	}
}

func TestLoadFile(t *testing.T) {
	cfg := defaults()
	if err := Load(&cfg, "testdata/good.yaml", flagSet(t)); err != nil {
		t.Fatal(err)
	}
	want := sample{
		Servers: []string{"gearmand1:4730", "gearmand2"}, Listen: ":4731", Slots: 8,
		ResumeGrace: 45 * time.Second, Encryption: true, Identifier: "site-a",
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got %+v\nwant %+v", cfg, want)
	}
}

func TestPrecedence(t *testing.T) {
	t.Setenv("GEARBRIDGE_SLOTS", "16")
	t.Setenv("GEARBRIDGE_IDENTIFIER", "from-env")
	t.Setenv("GEARBRIDGE_SERVER", "a:1,b:2")
	t.Setenv("GEARBRIDGE_ENCRYPTION", "no")
	cfg := defaults()
	// The flag beats the environment, which beats the file.
	if err := Load(&cfg, "testdata/good.yaml", flagSet(t, "--identifier=from-flag")); err != nil {
		t.Fatal(err)
	}
	if cfg.Slots != 16 || cfg.Identifier != "from-flag" || cfg.Encryption {
		t.Fatalf("got %+v", cfg)
	}
	if !reflect.DeepEqual(cfg.Servers, []string{"a:1", "b:2"}) {
		t.Fatalf("servers %q", cfg.Servers)
	}
}

func TestFlagSlice(t *testing.T) {
	cfg := defaults()
	if err := Load(&cfg, "", flagSet(t, "--server=x", "--server", "y,z")); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Servers, []string{"x", "y", "z"}) {
		t.Fatalf("servers %q", cfg.Servers)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		file string
		env  [2]string
		want []string
	}{
		{file: "testdata/unknown_key.yaml", want: []string{"unknown_key.yaml", "slotz"}},
		{file: "testdata/bad_int.yaml", want: []string{"slots", `"many" is not an integer`}},
		{file: "testdata/empty_int.yaml", want: []string{"slots", `"" is not an integer`}},
		{file: "testdata/bad_bool.yaml", want: []string{"encryption", `"maybe" is not a boolean`}},
		{file: "testdata/bad_duration.yaml", want: []string{"resume-grace", "soon"}},
		// A bare number is not silently nanoseconds.
		{file: "testdata/bare_duration.yaml", want: []string{"resume-grace", "use a unit, e.g. 30s"}},
		{file: "testdata/bare_float_duration.yaml", want: []string{"resume-grace", "use a unit, e.g. 1.5s"}},
		{file: "testdata/quoted_number_duration.yaml", want: []string{"resume-grace", "use a unit, e.g. 30s"}},
		{file: "testdata/bool_duration.yaml", want: []string{"resume-grace", "not a duration"}},
		{file: "testdata/bad_yaml.yaml", want: []string{"bad_yaml.yaml"}},
		{file: "testdata/missing.yaml", want: []string{"missing.yaml"}},
		{env: [2]string{"GEARBRIDGE_SLOTS", "x1"}, want: []string{"slots", `"x1"`}},
		{env: [2]string{"GEARBRIDGE_RESUME_GRACE", "30"}, want: []string{"resume-grace", "use a unit, e.g. 30s"}},
	}
	for _, tt := range tests {
		name := tt.file
		if name == "" {
			name = tt.env[0]
		}
		t.Run(name, func(t *testing.T) {
			if tt.env[0] != "" {
				t.Setenv(tt.env[0], tt.env[1])
			}
			cfg := defaults()
			err := Load(&cfg, tt.file, flagSet(t))
			if err == nil {
				t.Fatalf("no error, cfg %+v", cfg)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestZeroDurationNeedsNoUnit: 0 is the same in every unit, so it is
// accepted bare, as time.ParseDuration accepts "0"; it usually means "off".
func TestZeroDurationNeedsNoUnit(t *testing.T) {
	cfg := defaults()
	if err := Load(&cfg, "testdata/zero_duration.yaml", flagSet(t)); err != nil {
		t.Fatal(err)
	}
	if cfg.ResumeGrace != 0 {
		t.Fatalf("resume-grace = %v, want 0", cfg.ResumeGrace)
	}
}

// TestDurationFlag: a duration flag still reaches the field (viper hands
// it over as text).
func TestDurationFlag(t *testing.T) {
	cfg := defaults()
	if err := Load(&cfg, "testdata/good.yaml", flagSet(t, "--resume-grace=2m")); err != nil {
		t.Fatal(err)
	}
	if cfg.ResumeGrace != 2*time.Minute {
		t.Fatalf("resume-grace = %v, want 2m", cfg.ResumeGrace)
	}
}

func TestUnknownEnv(t *testing.T) {
	got := UnknownEnv(&sample{}, []string{"GEARBRIDGE_SLOTS=1", "GEARBRIDGE_SLOTZ=2", "HOME=/", "GEARBRIDGE_CONFIG=x"}, "GEARBRIDGE_CONFIG")
	if !reflect.DeepEqual(got, []string{"GEARBRIDGE_SLOTZ"}) {
		t.Fatalf("got %q", got)
	}
}

func TestParseBool(t *testing.T) {
	for _, s := range []string{"yes", "On", "TRUE", "1"} {
		if v, ok := ParseBool(s); !v || !ok {
			t.Errorf("%q: got %v %v", s, v, ok)
		}
	}
	for _, s := range []string{"no", "Off", "false", "0"} {
		if v, ok := ParseBool(s); v || !ok {
			t.Errorf("%q: got %v %v", s, v, ok)
		}
	}
	for _, s := range []string{"", "maybe", "2"} {
		if _, ok := ParseBool(s); ok {
			t.Errorf("%q accepted", s)
		}
	}
}

// keyed has two keys that are one setting, as key and keyfile are.
type keyed struct {
	Key     string `mapstructure:"key" oneof:"key"`
	KeyFile string `mapstructure:"keyfile" oneof:"key"`
	Slots   int    `mapstructure:"slots"`
}

// TestOneOf: of keys tagged with the same oneof group, the source with the
// highest precedence that sets any of them decides; the others of the
// group are cleared even when a lower source (or the values already in the
// struct, such as a classic file mapped onto it) set them.
func TestOneOf(t *testing.T) {
	dir := t.TempDir()
	yamlKeyFile := filepath.Join(dir, "keyfile.yaml")
	if err := os.WriteFile(yamlKeyFile, []byte("keyfile: /etc/k\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yamlBoth := filepath.Join(dir, "both.yaml")
	if err := os.WriteFile(yamlBoth, []byte("key: k\nkeyfile: /etc/k\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	flags := func(args ...string) *pflag.FlagSet {
		fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
		fs.String("key", "", "")
		fs.String("keyfile", "", "")
		fs.Int("slots", 0, "")
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return fs
	}
	tests := []struct {
		name  string
		start keyed
		file  string
		env   [2]string
		args  []string
		want  keyed
	}{
		{name: "flag beats the preset other key", start: keyed{KeyFile: "/preset"}, args: []string{"--key=f"}, want: keyed{Key: "f"}},
		{name: "flag beats the file's other key", file: yamlKeyFile, args: []string{"--key=f"}, want: keyed{Key: "f"}},
		{name: "flag beats the environment's other key", env: [2]string{"GEARBRIDGE_KEY", "e"}, args: []string{"--keyfile=/f"}, want: keyed{KeyFile: "/f"}},
		{name: "environment beats the file's other key", file: yamlKeyFile, env: [2]string{"GEARBRIDGE_KEY", "e"}, want: keyed{Key: "e"}},
		{name: "file beats the preset other key", start: keyed{Key: "preset"}, file: yamlKeyFile, want: keyed{KeyFile: "/etc/k"}},
		{name: "one source setting both keeps both", file: yamlBoth, want: keyed{Key: "k", KeyFile: "/etc/k"}},
		{name: "nothing set keeps the preset", start: keyed{KeyFile: "/preset"}, args: []string{"--slots=2"}, want: keyed{KeyFile: "/preset", Slots: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env[0] != "" {
				t.Setenv(tt.env[0], tt.env[1])
			}
			cfg := tt.start
			if err := Load(&cfg, tt.file, flags(tt.args...)); err != nil {
				t.Fatal(err)
			}
			if cfg != tt.want {
				t.Fatalf("got %+v, want %+v", cfg, tt.want)
			}
		})
	}
}
