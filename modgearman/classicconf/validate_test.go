package classicconf

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	base := func() Config {
		c := Defaults()
		c.Servers = []string{"localhost:4730"}
		c.Key = "secret"
		c.Hosts = true
		return c
	}
	tests := []struct {
		name   string
		role   Role
		modify func(c *Config)
		want   []string // substrings; none means valid
	}{
		{"valid NEB", RoleNEB, func(*Config) {}, nil},
		{"valid worker", RoleWorker, func(*Config) {}, nil},
		{"valid send_gearman", RoleSendGearman, func(*Config) {}, nil},
		{"no server", RoleNEB, func(c *Config) { c.Servers = nil }, []string{`no gearmand configured`}},
		{"no key", RoleWorker, func(c *Config) { c.Key = "" }, []string{`neither "key" nor "keyfile"`}},
		{"keyfile is enough", RoleWorker, func(c *Config) { c.Key, c.KeyFile = "", "/etc/k" }, nil},
		{"no key without encryption", RoleSendGearman, func(c *Config) { c.Key, c.Encryption = "", false }, nil},
		{"key and keyfile", RoleNEB, func(c *Config) { c.KeyFile = "/etc/k" }, []string{"both set"}},
		{"worker without queue", RoleWorker, func(c *Config) { c.Hosts = false }, []string{"no queue"}},
		{"worker with a group only", RoleWorker, func(c *Config) { c.Hosts, c.ServiceGroups = false, []string{"g"} }, nil},
		{"NEB perfdata without queue", RoleNEB, func(c *Config) { c.Perfdata = true }, []string{"without a queue"}},
		{"values out of range", RoleNEB, func(c *Config) {
			c.OrphanReturn, c.TimeoutReturn, c.PerfdataMode, c.LogMode = 7, -1, 3, "eventlog"
		}, []string{`"orphan_return"`, `"timeout_return"`, `"perfdata_mode"`, `"logmode"`}},
		{"bad lists", RoleNEB, func(c *Config) {
			c.HostGroups = []string{strings.Repeat("x", 51)}
			c.DupServers = []string{"h:99999"}
			c.Export = []ExportSpec{{Queue: "q", Callbacks: nil}}
		}, []string{`"hostgroups"`, `"dupserver"`, `"export"`}},
		{"bad scalars", RoleSendGearman, func(c *Config) {
			c.ResultQueue, c.Delimiter, c.LoadLimit1, c.WorkerNameInResult = "", "", -1, "x"
		}, []string{`"result_queue"`, `"delimiter"`, `"load_limit1"`, `"worker_name_in_result"`}},
		{"unknown role", Role(9), func(*Config) {}, []string{"unknown role Role(9)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.modify(&c)
			before := c.clone()
			err := c.Validate(tt.role)
			assertEqual(t, "config after Validate", c, before)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate succeeded, want error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestDefaultsAreValid(t *testing.T) {
	c := Defaults()
	c.Servers = []string{"localhost:4730"}
	c.Key = "k"
	c.ApplyWorkerDefaults()
	for _, r := range []Role{RoleNEB, RoleWorker, RoleSendGearman} {
		if err := c.Validate(r); err != nil {
			t.Errorf("Validate(%v): %v", r, err)
		}
	}
	// Spot checks of the documented choices.
	d := Defaults()
	assertEqual(t, "TimeoutReturn", d.TimeoutReturn, 2) // CRITICAL, as the C worker and the shipped files
	assertEqual(t, "GearmanConnectionTimeout", d.GearmanConnectionTimeout, 5000)
	assertEqual(t, "RestrictCommandCharacters", d.RestrictCommandCharacters, "$&();<>`\"'|")
	assertEqual(t, "Delimiter", d.Delimiter, "\t")
}

// TestResolveKey uses the keyfile vectors of the specification (section 3.1).
func TestResolveKey(t *testing.T) {
	files := map[string]string{
		"test1.key": strings.Repeat("1", 30) + "\n",
		"test2.key": "abcdef \nmore text\n",
		"test3.key": strings.Repeat("1", 40) + "\n",
		"crlf.key":  "secret\r\n",
		"tabs.key":  "secret\t \t\n",
		"empty.key": "\nsecond line\n",
		"nonl.key":  "no newline",
	}
	read := func(name string) ([]byte, error) {
		s, ok := files[name]
		if !ok {
			return nil, fs.ErrNotExist
		}
		return []byte(s), nil
	}
	tests := []struct{ file, want string }{
		{"test1.key", strings.Repeat("1", 30)},
		{"test2.key", "abcdef"},
		{"test3.key", strings.Repeat("1", 32)},
		{"crlf.key", "secret"},
		{"tabs.key", "secret"},
		{"nonl.key", "no newline"},
	}
	for _, tt := range tests {
		got, err := Config{KeyFile: tt.file}.ResolveKey(read)
		if err != nil {
			t.Errorf("%s: %v", tt.file, err)
		}
		assertEqual(t, tt.file, got, tt.want)
	}
	if _, err := (Config{KeyFile: "empty.key"}).ResolveKey(read); err == nil {
		t.Error("empty first line: want error")
	}
	if _, err := (Config{KeyFile: "missing.key"}).ResolveKey(read); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing.key") {
		t.Errorf("missing file: err = %v", err)
	}
	if _, err := (Config{KeyFile: "x"}).ResolveKey(nil); err == nil {
		t.Error("nil reader: want error")
	}
	got, err := Config{Key: "direct"}.ResolveKey(nil)
	if err != nil || got != "direct" {
		t.Errorf("key: got %q, %v", got, err)
	}
}

func TestRoleString(t *testing.T) {
	assertEqual(t, "names", []string{RoleNEB.String(), RoleWorker.String(), RoleSendGearman.String()},
		[]string{"neb", "worker", "send_gearman"})
}
