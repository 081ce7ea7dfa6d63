package neb

import (
	"fmt"
	"os"
	"strconv"

	"github.com/gearbridge/gearbridge/modgearman/classicconf"
)

// Config is the module configuration: the classic mod_gearman_neb.conf
// options plus the resolved secret key.
type Config struct {
	classicconf.Config
	// Secret is the resolved shared key (from key= or keyfile=).
	Secret string
}

// ParseBrokerArgs parses the arguments of a broker_module line (for example
// "config=/etc/mod_gearman/mod_gearman_neb.conf server=localhost"), including
// the files they name, applies the NEB's auto-defaults, validates the result
// and reads the key file. Relative paths are resolved against dir (empty: the
// working directory).
func ParseBrokerArgs(args, dir string) (Config, error) {
	p := classicconf.NewParser()
	p.Dir = dir
	if err := p.ParseBrokerArgs(args); err != nil {
		return Config{}, fmt.Errorf("parse broker arguments: %w", err)
	}
	c := p.Config()
	return NewConfig(c)
}

// NewConfig applies the NEB auto-defaults to c, validates it and resolves the
// key.
func NewConfig(c classicconf.Config) (Config, error) {
	c.ApplyNEBDefaults()
	if err := c.Validate(classicconf.RoleNEB); err != nil {
		return Config{}, fmt.Errorf("invalid configuration: %w", err)
	}
	key, err := c.ResolveKey(os.ReadFile)
	if err != nil {
		return Config{}, fmt.Errorf("read key: %w", err)
	}
	return Config{Config: c, Secret: key}, nil
}

// IgnoredOptions returns one warning for each classic option that is set
// but that this module accepts without acting on it, so that the core log
// says so instead of ignoring it silently.
func (c *Config) IgnoredOptions() []string {
	var w []string
	for _, e := range c.Export {
		w = append(w, "export="+e.String()+" is not supported: no export jobs are sent")
	}
	// The classic default is 30, so a classic module flattens unless the
	// option is 0 or less; say that this one does not.
	if c.LatencyFlattenWindow > 0 {
		w = append(w, "latency_flatten_window="+strconv.Itoa(c.LatencyFlattenWindow)+
			" is not supported: checks are not rescheduled to flatten latency (set it to 0 to silence this warning)")
	}
	return w
}
