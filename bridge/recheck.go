package bridge

import (
	"context"
	"slices"
	"time"

	"github.com/gearbridge/gearbridge/certs"
)

// Close reasons of sessions that the rules or the certificate no longer
// allow.
const (
	expiredSessionReason  = "certificate expired"
	noQueuesSessionReason = "no queue left to it by the authorization rules"
	noRoleSessionReason   = "its identity lost the worker role in the authorization rules"
	identifierReason      = "its identifier is no longer allowed to its identity by the authorization rules"
)

// sessionList is a snapshot of the sessions, attached and detached.
func (b *Bridge) sessionList() []*session {
	b.mu.Lock()
	defer b.mu.Unlock()
	list := make([]*session, 0, len(b.sessions))
	for _, s := range b.sessions {
		list = append(list, s)
	}
	return list
}

// recheckSessions applies the current authorization rules to every live
// and detached session: an identifier no longer allowed to the identity
// closes the session, a queue no longer allowed to the session's
// identity is taken away from it (CANT_DO on its gearmand connections, so
// gearmand stops offering it), and a session left with no queue, or whose
// identity lost the worker role, is closed (gearmand requeues its
// unfinished jobs).
func (b *Bridge) recheckSessions() {
	az := b.authz()
	for _, s := range b.sessionList() {
		if !az.HasRole(s.identity, RoleWorker) {
			s.log.Warn("closing session: " + noRoleSessionReason)
			s.close(noRoleSessionReason)
			continue
		}
		if !az.AllowIdentifier(s.identity, s.identifier) {
			s.log.Warn("closing session: " + identifierReason)
			s.close(identifierReason)
			continue
		}
		keep := slices.DeleteFunc(s.currentQueues(), func(q string) bool { return !az.AllowQueue(s.identity, q) })
		if len(keep) == 0 {
			s.log.Warn("closing session: " + noQueuesSessionReason)
			s.close(noQueuesSessionReason)
			continue
		}
		s.restrictQueues(keep)
	}
}

// currentQueues returns a copy of the queues the session serves.
func (s *session) currentQueues() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.queues)
}

// restrictQueues narrows the session to keep, a subset of its queues. The
// queues taken away are unregistered on the live gearmand connections and
// left out of every later (re)connect. A GRAB already in flight may still
// bring one job of a removed queue; it was taken under the old rules and
// runs.
func (s *session) restrictQueues(keep []string) {
	s.mu.Lock()
	removed := slices.DeleteFunc(slices.Clone(s.queues), func(q string) bool { return slices.Contains(keep, q) })
	if len(removed) == 0 || s.closed {
		s.mu.Unlock()
		return
	}
	s.queues = keep
	s.mu.Unlock()
	for _, c := range s.conns {
		c.mu.Lock()
		c.queues = keep
		c.gate = s.b.gates.get(c.server, keep)
		wc := c.conn
		c.mu.Unlock()
		if wc == nil {
			continue
		}
		for _, q := range removed {
			if err := wc.CantDo(q); err != nil {
				// A reconnect registers only what is left.
				s.log.Warn("unregister queue failed; reconnecting", "server", c.server, "queue", q, "err", err)
				c.drop(wc)
				break
			}
		}
	}
	s.b.m.queuesRevoked.Add(float64(len(removed)))
	s.log.Warn("queues taken away from the session by the authorization rules", "queues", removed, "left", keep)
}

// expireSessions closes, once a second, every session whose certificate's
// validity has ended and was not renewed, until ctx ends. A session's
// certificate is the one its worker attached with last, or the one the
// bridge renewed for it (see sessionsRenewed).
func (b *Bridge) expireSessions(ctx context.Context) {
	t := time.NewTicker(b.cfg.WatchInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, s := range b.sessionList() {
				if na := s.certNotAfter(); !na.IsZero() && now.After(na) {
					s.log.Warn("closing session: its certificate expired", "not_after", na, "serial", s.certSerial())
					s.close(expiredSessionReason)
				}
			}
		}
	}
}

// sessionsRenewed moves the sessions attached with old's certificate to
// the certificate the bridge just renewed for them, so that they outlive
// the old certificate's expiry: the worker uses the new one at its next
// handshake.
func (b *Bridge) sessionsRenewed(old Identity, certPEM []byte) {
	leaf, err := certs.ParseCertificatePEM(certPEM)
	if err != nil {
		return
	}
	for _, s := range b.sessionList() {
		if s.identity == old.Name && s.certSerial() == old.Serial {
			s.setCert(certs.SerialOf(leaf), leaf.NotAfter)
		}
	}
}

// earliestSessionExpiry is the earliest certificate expiry among attached
// sessions, in Unix seconds; zero when none is attached.
func (b *Bridge) earliestSessionExpiry() float64 {
	var earliest time.Time
	for _, s := range b.sessionList() {
		s.mu.Lock()
		na, attached := s.notAfter, s.stream != nil
		s.mu.Unlock()
		if attached && !na.IsZero() && (earliest.IsZero() || na.Before(earliest)) {
			earliest = na
		}
	}
	if earliest.IsZero() {
		return 0
	}
	return float64(earliest.Unix())
}
