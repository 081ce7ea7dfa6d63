package bridge

import (
	"context"
	"testing"
	"time"
)

// softConn records how each job was completed.
type softConn struct {
	fakeConn
	now, soon []string
}

func (c *softConn) Complete(_ context.Context, handle string, _ []byte) error {
	c.now = append(c.now, handle)
	return nil
}

func (c *softConn) CompleteSoon(handle string, _ time.Duration) error {
	c.soon = append(c.soon, handle)
	return nil
}

// A check whose result is on the result queue is completed towards
// gearmand at once: until gearmand has the completion it merges the next
// run of the check, which the core may submit as soon as it has the
// result, into the finished job (same unique key), and that run is lost.
// Only a job without a result waits to ride along with the next GRAB.
func TestCheckWithResultIsCompletedAtOnce(t *testing.T) {
	c := &softConn{}
	if err := completeJob(context.Background(), c, "H:check", true); err != nil {
		t.Fatal(err)
	}
	if err := completeJob(context.Background(), c, "H:handler", false); err != nil {
		t.Fatal(err)
	}
	if len(c.now) != 1 || c.now[0] != "H:check" {
		t.Errorf("completed at once: %q, want the check's job only", c.now)
	}
	if len(c.soon) != 1 || c.soon[0] != "H:handler" {
		t.Errorf("completed with the next request: %q, want the event handler's job only", c.soon)
	}
}
