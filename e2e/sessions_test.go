package e2e

import (
	"testing"
	"time"
)

// TestSessionEndsWithItsCertificate: the real bridge closes a live worker
// session when the worker's certificate expires, and says why.
func TestSessionEndsWithItsCertificate(t *testing.T) {
	c := newCluster(t)
	bridge, addr := c.startBridge("bridge", "127.0.0.1:0")
	c.gb("certs", "issue", "--dir", c.ca, "--role", "worker", "--name", "w-exp", "--lifetime", "6s")
	w := c.startWorker("w-exp", addr, "--services")
	c.waitLog(w, `session started`, 20*time.Second)
	c.waitLog(bridge, `closing session: its certificate expired.*identity=w-exp`, 20*time.Second)
	c.waitLog(bridge, `session closed.*reason="certificate expired"`, 5*time.Second)
}

// TestAuthzReloadTakesQueueFromLiveSession: rewriting the bridge's authz
// file takes a queue away from a live session (the session goes on with
// the rest), as the bridge's file watch reloads the rules.
func TestAuthzReloadTakesQueueFromLiveSession(t *testing.T) {
	c := newCluster(t)
	bridge, addr := c.startBridge("bridge", "127.0.0.1:0")
	check, _ := writePlugins(t, c.dir)
	w := c.startWorker("w1", addr, "--services", "--hostgroups", "x")
	c.waitLog(w, `session started`, 20*time.Second)
	writeFile(t, c.authz, "rules:\n  - {identity: \"w*\", role: worker, queues: [\"service\", \"host\"]}\n", 0o644)
	c.waitLog(bridge, `queues taken away from the session.*queues=\[hostgroup_x\]`, 10*time.Second)
	c.runOneCheck(check, 2) // a service check still runs on the session
}

// TestPerJobDebugLines: at debug level the remote worker and the bridge log
// one line per job naming host, service, worker and return code, as a
// classic worker does with debug=1.
func TestPerJobDebugLines(t *testing.T) {
	c := newCluster(t)
	bridge, addr := c.startBridge("bridge", "127.0.0.1:0")
	check, _ := writePlugins(t, c.dir)
	w := c.startWorker("w1", addr, "--services")
	c.waitLog(w, `session started`, 20*time.Second)
	c.runOneCheck(check, 2)
	c.waitLog(w, `msg="job done".* host=host0002 service=svc0002 rc=1`, 5*time.Second)
	c.waitLog(bridge, `msg="job done".*identifier=w1.* host=host0002 service=svc0002 rc=1 outcome=worker`, 5*time.Second)
}
