package classicconf

import "strings"

// OptionName returns the name of the option key spells, in the spelling of
// the specification's option table (aliases such as eventhandlers or m
// give eventhandler and message), and whether the option needs a value:
// false for those a bare --flag enables. An unknown key is an error
// wrapping [ErrUnknownKey].
//
// Unlike a file, a command line may also spell '_' as '-' (--job-timeout
// for job_timeout), since the flags of other programs are spelled so.
func OptionName(key string) (name string, needsValue bool, err error) {
	idx := newOptionIndex()
	o, err := idx.lookup(trim(key))
	if err != nil {
		var alt error
		if o, alt = idx.lookup(strings.ReplaceAll(trim(key), "-", "_")); alt != nil {
			return "", false, err
		}
	}
	if o.include {
		return o.name, true, nil
	}
	return o.name, o.bare == "", nil
}

// ChangedOptions lists the options whose value in c differs from
// [Defaults], by name and in the order of the option table. An option set
// to its default value is not listed: nothing tells it apart from one not
// set at all.
func ChangedOptions(c Config) []string {
	d := Defaults()
	var names []string
	for _, o := range optionTable() {
		if o.get == nil {
			continue
		}
		if !slicesEqual(o.get(&c), o.get(&d)) {
			names = append(names, o.name)
		}
	}
	return names
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// OptionNames lists the names of all options in the order of the option
// table, without aliases and without config (which includes files).
func OptionNames() []string {
	var names []string
	for _, o := range optionTable() {
		if !o.include && o.get != nil {
			names = append(names, o.name)
		}
	}
	return names
}
