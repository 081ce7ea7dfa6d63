package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/gearbridge/gearbridge/modgearman"
)

// defaultGearmanPort is gearmand's registered port.
const defaultGearmanPort = "4730"

// defaultBridgePort is the port the bridge listens on by default, next to
// gearmand's.
const defaultBridgePort = "4731"

// bridgeAddr turns a --bridge value into a gRPC target: HOST or HOST:PORT,
// with the bridge's default port 4731 when none is given (gRPC's own
// default would be 443). An IPv6 address may be bare or in brackets.
// Targets with a gRPC scheme (dns:///, unix:, passthrough:///) are used
// as given.
func bridgeAddr(s string) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", errors.New("bridge: empty address")
	case strings.Contains(s, ":///"), strings.HasPrefix(s, "unix:"), strings.HasPrefix(s, "unix-abstract:"):
		return s, nil
	case net.ParseIP(s) != nil: // a bare IPv6 address has colons but no port
		return net.JoinHostPort(s, defaultBridgePort), nil
	case strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]"):
		return net.JoinHostPort(s[1:len(s)-1], defaultBridgePort), nil
	case !strings.Contains(s, ":"):
		return net.JoinHostPort(s, defaultBridgePort), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("bridge %q: %w", s, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("bridge %q: port %q is not a number 1..65535", s, port)
	}
	return net.JoinHostPort(host, port), nil
}

// normalizeServers expands comma lists, adds the default port and drops
// duplicates, like the classic server= option: "host" is host:4730 and
// ":4730" is 0.0.0.0:4730.
func normalizeServers(in []string) ([]string, error) {
	var out []string
	for _, item := range in {
		for s := range strings.SplitSeq(item, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			host, port := s, defaultGearmanPort
			if h, p, err := net.SplitHostPort(s); err == nil {
				host, port = h, p
			} else if strings.Count(s, ":") == 1 {
				return nil, fmt.Errorf("server %q: %w", s, err)
			}
			if host == "" {
				host = "0.0.0.0"
			}
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				return nil, fmt.Errorf("server %q: port %q is not a number 1..65535", s, port)
			}
			addr := net.JoinHostPort(host, port)
			if !slices.Contains(out, addr) {
				out = append(out, addr)
			}
		}
	}
	return out, nil
}

// resolveKey returns the classic payload key from --key or --keyfile (first
// line, at most 32 characters, trailing whitespace removed: the C rule).
func resolveKey(key, keyFile string) (string, error) {
	if keyFile == "" {
		return key, nil
	}
	if key != "" {
		return "", errors.New("key: set either --key or --keyfile, not both")
	}
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return "", fmt.Errorf("keyfile: %w", err)
	}
	k := modgearman.KeyFromFile(b)
	if k == "" {
		return "", fmt.Errorf("keyfile %s: the first line is empty", keyFile)
	}
	return k, nil
}

// onSIGHUP calls reload for every SIGHUP until the returned stop is called;
// stop waits for the loop to end.
func onSIGHUP(reload func()) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-hup:
				reload()
			}
		}
	})
	return func() {
		signal.Stop(hup)
		close(done)
		wg.Wait()
	}
}
