package classicconf

import (
	"errors"
	"fmt"
)

// Role is the program a configuration is validated for.
type Role int

// Roles known to [Config.Validate].
const (
	RoleNEB         Role = iota + 1 // the NEB module in the core
	RoleWorker                      // mod_gearman_worker
	RoleSendGearman                 // send_gearman
)

// String returns the role's program name.
func (r Role) String() string {
	switch r {
	case RoleNEB:
		return "neb"
	case RoleWorker:
		return "worker"
	case RoleSendGearman:
		return "send_gearman"
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// Validate checks c for role without changing it and without I/O. It
// re-checks every value against the parser's rules (so a Config built in
// code is held to the same standard) and applies the required-option checks
// of classic Mod-Gearman: at least one server, a key or keyfile when
// encryption is on, and for the worker at least one queue. Apply the role's
// auto-defaults (ApplyNEBDefaults, ApplyWorkerDefaults,
// ApplySendGearmanDefaults) before validating. All problems are returned,
// joined.
func (c Config) Validate(role Role) error {
	if role < RoleNEB || role > RoleSendGearman {
		return fmt.Errorf("validate: unknown role %v", role)
	}
	var errs []error
	scratch := Defaults()
	for _, o := range optionTable() {
		if o.get == nil {
			continue
		}
		for _, v := range o.get(&c) {
			if _, err := o.set(&scratch, v); err != nil {
				errs = append(errs, fmt.Errorf("option %q: %w", o.name, err))
			}
		}
	}
	if len(c.Servers) == 0 {
		errs = append(errs, fmt.Errorf("%s: no gearmand configured (option \"server\")", role))
	}
	if c.Key != "" && c.KeyFile != "" {
		errs = append(errs, errors.New(`options "key" and "keyfile" are both set; set one`))
	}
	if c.Encryption && c.Key == "" && c.KeyFile == "" {
		errs = append(errs, fmt.Errorf(`%s: encryption is on but neither "key" nor "keyfile" is set`, role))
	}
	switch role {
	case RoleNEB:
		if c.Perfdata && len(c.PerfdataQueues) == 0 {
			errs = append(errs, errors.New(`option "perfdata": enabled without a queue`))
		}
	case RoleWorker:
		if !c.Hosts && !c.Services && !c.EventHandler && !c.Notifications &&
			len(c.HostGroups) == 0 && len(c.ServiceGroups) == 0 {
			errs = append(errs, errors.New("worker: no queue to serve (set hosts, services, eventhandler, notifications, hostgroups or servicegroups)"))
		}
	}
	return errors.Join(errs...)
}

// ResolveKey returns the shared secret. With KeyFile set it reads the file
// through readFile and applies the classic C rule: the first line only, at
// most 32 characters, trailing white space removed. Otherwise it returns Key
// (possibly empty; the codec uses its first 32 bytes).
func (c Config) ResolveKey(readFile func(name string) ([]byte, error)) (string, error) {
	if c.KeyFile == "" {
		return c.Key, nil
	}
	if readFile == nil {
		return "", fmt.Errorf("read keyfile %q: no file reader given", c.KeyFile)
	}
	data, err := readFile(c.KeyFile)
	if err != nil {
		return "", fmt.Errorf("read keyfile %q: %w", c.KeyFile, err)
	}
	key := keyFromFile(data)
	if key == "" {
		return "", fmt.Errorf("read keyfile %q: first line holds no key", c.KeyFile)
	}
	return key, nil
}
