//go:build soak

package nebe2e

import (
	"testing"

	"github.com/gearbridge/gearbridge/internal/linkproxy"
)

// newSoakProxy starts a link proxy to target, closed with the test.
func newSoakProxy(t *testing.T, target string) *linkproxy.Proxy {
	t.Helper()
	p, err := linkproxy.New(target)
	must(t, err)
	t.Cleanup(p.Close)
	return p
}
