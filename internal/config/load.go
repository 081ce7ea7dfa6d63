// Package config loads the YAML configuration of gearbridge's own daemons
// with viper: defaults from the Go struct, then the file given by --config,
// then GEARBRIDGE_* environment variables, then command-line flags.
//
// Loading is strict. A key in the file that the struct does not know, or a
// value that does not parse as the field's type, is an error naming the key.
// Strings are never silently coerced: "" is not 0 and "maybe" is not false.
//
// Fields that carry the same `oneof:"name"` tag are one setting, like key
// and keyfile: the source of highest precedence that sets any of them
// decides, and the others are cleared, whichever source set them.
//
// Keys are flat and spelled like the flags (`tls-ca`, `log-level`). Viper
// lower-cases map keys, so configuration never uses a map keyed by a queue,
// group or host name; such things are lists.
package config

import (
	"cmp"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// EnvPrefix is the prefix of environment overrides: key `tls-ca` is read
// from GEARBRIDGE_TLS_CA.
const EnvPrefix = "GEARBRIDGE"

// EnvName returns the environment variable that overrides key.
func EnvName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(key))
}

// Load fills cfg, a pointer to a struct whose fields carry `mapstructure`
// tags, in increasing precedence from: the values already in cfg (the
// defaults), the YAML file (when file is not empty), GEARBRIDGE_* environment
// variables, and the flags of fs that were set on the command line and whose
// name is a key of cfg. Keys of a oneof group that the deciding source
// does not set are cleared (see the package documentation).
func Load(cfg any, file string, fs *pflag.FlagSet) error {
	fields, err := fieldsOf(cfg)
	if err != nil {
		return err
	}
	v := viper.New()
	for _, f := range fields {
		k := f.key
		if err := v.BindEnv(k, EnvName(k)); err != nil {
			return fmt.Errorf("bind env for %q: %w", k, err)
		}
		if fs == nil {
			continue
		}
		if f := fs.Lookup(k); f != nil && f.Changed {
			if err := v.BindPFlag(k, f); err != nil {
				return fmt.Errorf("bind flag --%s: %w", k, err)
			}
		}
	}
	if file != "" {
		v.SetConfigFile(file)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return fmt.Errorf("read config file %s: %w", file, err)
		}
	}
	err = v.UnmarshalExact(cfg, viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		strictScalarHook,
		mapstructure.StringToTimeDurationHookFunc(),
		mapstructure.StringToSliceHookFunc(","),
	)))
	if err != nil {
		where := "configuration"
		if file != "" {
			where = "config file " + file
		}
		msg := strings.TrimPrefix(err.Error(), "decoding failed due to the following error(s):\n\n")
		return fmt.Errorf("%s: %s", where, msg)
	}
	clearOneOf(reflect.ValueOf(cfg).Elem(), fields, func(k string) int {
		switch {
		case fs != nil && fs.Lookup(k) != nil && fs.Lookup(k).Changed:
			return fromFlag
		case os.Getenv(EnvName(k)) != "": // viper ignores empty variables too
			return fromEnv
		case file != "" && v.InConfig(k):
			return fromFile
		}
		return fromStruct
	})
	return nil
}

// Keys lists the top-level keys of cfg (mapstructure tags, squashed
// embedded structs included).
func Keys(cfg any) ([]string, error) {
	fields, err := fieldsOf(cfg)
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.key
	}
	return keys, nil
}

// field is one key of a configuration struct.
type field struct {
	key   string
	index []int  // for reflect.Value.FieldByIndex, through squashed structs
	oneOf string // the oneof tag: the keys sharing it are one setting
}

func fieldsOf(cfg any) ([]field, error) {
	t := reflect.TypeOf(cfg)
	if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("config: want a pointer to a struct, got %T", cfg)
	}
	return structFields(t.Elem(), nil), nil
}

func structFields(t reflect.Type, parent []int) []field {
	var fields []field
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		index := append(slices.Clone(parent), i)
		tag := f.Tag.Get("mapstructure")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "squash") && f.Type.Kind() == reflect.Struct {
			fields = append(fields, structFields(f.Type, index)...)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields = append(fields, field{key: name, index: index, oneOf: f.Tag.Get("oneof")})
	}
	return fields
}

// Where a key was set, in increasing precedence.
const (
	fromStruct = iota // the value already in the struct: a default, or a classic file mapped onto it
	fromFile
	fromEnv
	fromFlag
)

// clearOneOf makes the keys of each oneof group one setting: the source of
// highest precedence that sets any key of the group decides, and the keys
// of the group it does not set are cleared. So --key on the command line
// beats keyfile in the file instead of clashing with it. A source that sets
// two keys of a group keeps both, for the program to refuse.
func clearOneOf(cfg reflect.Value, fields []field, source func(key string) int) {
	top := map[string]int{}
	for _, f := range fields {
		if f.oneOf != "" {
			top[f.oneOf] = max(top[f.oneOf], source(f.key))
		}
	}
	for _, f := range fields {
		if f.oneOf != "" && source(f.key) < top[f.oneOf] {
			cfg.FieldByIndex(f.index).SetZero()
		}
	}
}

// strictScalarHook parses strings into numbers and booleans strictly, so
// that viper's weak typing never turns "" or "abc" into a zero value.
// Booleans accept the classic Mod-Gearman words as well: yes/on/true/1 and
// no/off/false/0.
func strictScalarHook(from, to reflect.Type, data any) (any, error) {
	if to == durationType {
		return durationHook(from, data)
	}
	if from.Kind() != reflect.String {
		return data, nil
	}
	s := strings.TrimSpace(data.(string))
	if to == reflect.TypeFor[[]string]() || to.Kind() == reflect.String {
		return data, nil
	}
	switch to.Kind() {
	case reflect.Bool:
		b, ok := ParseBool(s)
		if !ok {
			return nil, fmt.Errorf("%q is not a boolean (want yes/no, on/off, true/false or 1/0)", s)
		}
		return b, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, to.Bits())
		if err != nil {
			return nil, fmt.Errorf("%q is not an integer", s)
		}
		return n, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(s, 10, to.Bits())
		if err != nil {
			return nil, fmt.Errorf("%q is not a non-negative integer", s)
		}
		return n, nil
	case reflect.Float32, reflect.Float64:
		n, err := strconv.ParseFloat(s, to.Bits())
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", s)
		}
		return n, nil
	}
	return data, nil
}

var durationType = reflect.TypeFor[time.Duration]()

// durationHook decodes a duration. It wants text with a unit ("30s",
// "1m30s"). A bare number is an error, whether YAML gives it as a number
// (`resume-grace: 30`) or as text (`"30"`, an environment variable): the
// weak decoding underneath would take it as nanoseconds, and nobody who
// writes 30 means 30 ns. Zero is the exception: it is the same in every
// unit, time.ParseDuration accepts "0" too, and it often means "off".
func durationHook(from reflect.Type, data any) (any, error) {
	if from == durationType {
		return data, nil
	}
	v := reflect.ValueOf(data)
	var num, shown string
	switch from.Kind() {
	case reflect.String:
		s := strings.TrimSpace(v.String())
		if d, err := time.ParseDuration(s); err == nil {
			return d, nil
		}
		if !isBareNumber(s) {
			return nil, fmt.Errorf("%q is not a duration (want e.g. 30s or 1m30s)", s)
		}
		num, shown = s, strconv.Quote(s)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		num = strconv.FormatInt(v.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		num = strconv.FormatUint(v.Uint(), 10)
	case reflect.Float32, reflect.Float64:
		num = strconv.FormatFloat(v.Float(), 'g', -1, from.Bits())
	default:
		return nil, fmt.Errorf("%v is not a duration (want e.g. 30s or 1m30s)", data)
	}
	if f, err := strconv.ParseFloat(num, 64); err == nil && f == 0 {
		return time.Duration(0), nil
	}
	return nil, fmt.Errorf("%s has no unit: use a unit, e.g. %ss (a bare number would be nanoseconds)", cmp.Or(shown, num), num)
}

// isBareNumber reports whether s is a decimal number without a unit, like
// "30", "-5" or "1.5".
func isBareNumber(s string) bool {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	digits, dots := 0, 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}

// ParseBool applies the classic Mod-Gearman boolean rule.
func ParseBool(s string) (value, ok bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "yes", "on", "true", "1":
		return true, true
	case "no", "off", "false", "0":
		return false, true
	}
	return false, false
}

// UnknownEnv returns the GEARBRIDGE_* variables of environ that name no key
// of cfg and are not in allow; commands log them as a warning, since a typo
// in an override would otherwise go unnoticed.
func UnknownEnv(cfg any, environ []string, allow ...string) []string {
	keys, err := Keys(cfg)
	if err != nil {
		return nil
	}
	known := map[string]bool{}
	for _, k := range keys {
		known[EnvName(k)] = true
	}
	for _, a := range allow {
		known[a] = true
	}
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, EnvPrefix+"_") && !known[name] {
			out = append(out, name)
		}
	}
	return out
}
