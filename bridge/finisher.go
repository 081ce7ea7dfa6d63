package bridge

import (
	"time"

	"github.com/gearbridge/gearbridge/modgearman"
)

// finisherIdle is how long an idle finisher waits for more work before it
// ends: long enough to outlast the gaps of a steady check rate, short
// enough that a thousand quiet sessions hold no finishers.
const finisherIdle = 5 * time.Second

// finishReq is a job whose result is to be finished (see finish).
type finishReq struct {
	ij  *inflightJob
	res modgearman.Result
	how outcome
	gen uint64 // with a worker result: grant one credit afterwards
}

// goFinish hands reqs, finished together, to an idle finisher of the
// session, or starts one. Finishers outlive one batch, so a busy session
// does not pay for a fresh goroutine (and its stack growth) per result.
// The caller has added each req to s.wg; the finisher marks it done.
func (s *session) goFinish(reqs ...finishReq) {
	if len(reqs) == 0 {
		return
	}
	s.mu.Lock()
	if s.finishIdle > 0 {
		// Reserved: an idle finisher takes it from the queue.
		s.finishIdle--
		s.mu.Unlock()
		s.finishQ <- reqs
		return
	}
	s.mu.Unlock()
	s.wg.Add(1)
	go s.finisher(reqs)
}

// finisher finishes reqs and then whatever is handed to it, until it has
// been idle for finisherIdle or the session has ended. It leaves only while
// it can take itself out of the idle count: every batch handed to an idle
// finisher is then still taken by one that stays.
func (s *session) finisher(reqs []finishReq) {
	defer s.wg.Done()
	idle := time.NewTimer(finisherIdle)
	defer idle.Stop()
	for {
		s.runFinish(reqs)
		s.mu.Lock()
		s.finishIdle++
		s.mu.Unlock()
		idle.Reset(finisherIdle)
		ended := s.ctx.Done()
	wait:
		for {
			select {
			case reqs = <-s.finishQ:
				break wait
			case <-idle.C:
			case <-ended:
			}
			s.mu.Lock()
			if s.finishIdle > 0 {
				s.finishIdle--
				s.mu.Unlock()
				return
			}
			s.mu.Unlock()
			// A batch is on its way to this finisher: wait for it.
			ended = nil
		}
	}
}

// runFinish finishes reqs, then grants the credits that came with their
// results, all at once.
func (s *session) runFinish(reqs []finishReq) {
	s.finishAll(reqs)
	credits := map[uint64]int{}
	for _, r := range reqs {
		if r.gen != 0 {
			credits[r.gen]++
		}
	}
	for gen, n := range credits {
		s.creditsAfter(gen, n)
	}
	for range reqs {
		s.wg.Done()
	}
}
