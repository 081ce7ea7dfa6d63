package plugin

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"
)

// DefaultNegateTimeout is the plugin timeout of negate without -t, as the
// monitoring-plugins negate has it.
const DefaultNegateTimeout = 11 * time.Second

// negate holds the options of an internal negate command line.
type negate struct {
	timeout       time.Duration
	timeoutResult string // state name for timeouts, "" keeps timeout_return
	// state names replacing OK, WARNING, CRITICAL and UNKNOWN; "" keeps it
	to         [4]string
	substitute bool
}

// negated is the command negate runs.
type negated struct {
	argv, env []string
	useShell  bool
}

// parseNegate recognises ".../negate [options] /path/plugin [args]" the way
// the classic Go worker's internal_negate does: the plugin is the first
// argument that starts with "/", the words before it are negate's options,
// and a plugin given as one quoted word is split again. ok is false when
// the line is not such a command or its options do not parse; the real
// negate then runs.
func parseNegate(argv []string) (negate, negated, bool) {
	if len(argv) < 2 || !strings.HasSuffix(argv[0], "/negate") {
		return negate{}, negated{}, false
	}
	main := -1
	for i, a := range argv[1:] {
		if strings.HasPrefix(a, "/") {
			main = i + 1
			break
		}
	}
	if main < 0 {
		return negate{}, negated{}, false
	}
	n, err := parseNegateOptions(argv[1:main])
	if err != nil {
		return negate{}, negated{}, false
	}
	inner := negated{argv: argv[main:]}
	if len(inner.argv) == 1 {
		inner.argv, inner.env, inner.useShell = Parse(inner.argv[0])
		if len(inner.argv) == 0 {
			return negate{}, negated{}, false
		}
	}
	return n, inner, true
}

// parseNegateOptions reads negate's options with the rules of Go's flag
// package, as the classic Go worker does: -x or --x, values as -x v or
// -x=v, parsing stops at the first word that is not an option.
func parseNegateOptions(args []string) (negate, error) {
	n := negate{timeout: DefaultNegateTimeout}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if len(a) < 2 || a[0] != '-' {
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		if name == "s" || name == "substitute" {
			b := true
			if hasValue {
				var err error
				if b, err = strconv.ParseBool(value); err != nil {
					return n, err
				}
			}
			n.substitute = b
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return n, errors.New("negate: option -" + name + " needs a value")
			}
			i++
			value = args[i]
		}
		switch name {
		case "t", "timeout":
			secs, err := strconv.Atoi(value)
			if err != nil {
				return n, err
			}
			n.timeout = time.Duration(secs) * time.Second
		case "T", "timeout-result":
			n.timeoutResult = stateLabel(value)
		case "o", "ok":
			n.to[0] = stateLabel(value)
		case "w", "warning":
			n.to[1] = stateLabel(value)
		case "c", "critical":
			n.to[2] = stateLabel(value)
		case "u", "unknown":
			n.to[3] = stateLabel(value)
		default:
			return n, errors.New("negate: unknown option -" + name)
		}
	}
	if n.to == [4]string{} {
		// Without a mapping negate swaps OK and CRITICAL.
		n.to[0], n.to[2] = "CRITICAL", "OK"
	}
	return n, nil
}

// stateLabel turns 0..3 into the state name; names are taken as given,
// upper-cased.
func stateLabel(v string) string {
	switch v {
	case "0", "1", "2", "3":
		rc, _ := strconv.Atoi(v)
		return stateName(rc)
	}
	return strings.ToUpper(v)
}

// stateCode is the return code of a state name; a name negate does not
// know gives 3. (The classic Go worker maps UNKNOWN to 2, a slip: negate
// itself and the option's meaning give 3.)
func stateCode(label string) int {
	switch label {
	case "OK":
		return 0
	case "WARNING":
		return 1
	case "CRITICAL":
		return 2
	}
	return 3
}

// runNegated runs the negated plugin with negate's timeout (bounded by the
// job's) and maps its state.
func runNegated(ctx context.Context, n negate, inner negated, env []string, opt Options) Result {
	if n.timeout > 0 && n.timeout < opt.Timeout {
		opt.Timeout = n.timeout
	}
	res := dispatch(ctx, inner.argv, append(append([]string(nil), env...), inner.env...), inner.useShell, opt)
	switch {
	case res.Cancelled:
	case res.EarlyTimeout:
		if n.timeoutResult != "" {
			res.ReturnCode = stateCode(n.timeoutResult)
		}
	case res.ReturnCode >= 0 && res.ReturnCode <= 3:
		target := n.to[res.ReturnCode]
		if target == "" {
			break
		}
		from := stateName(res.ReturnCode)
		res.ReturnCode = stateCode(target)
		if n.substitute {
			res.Output = strings.Replace(res.Output, from, target, 1)
		}
	}
	return res
}
