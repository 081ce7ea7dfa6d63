package worker

import (
	"context"

	"google.golang.org/grpc"
)

// RenewFunc renews the worker's client certificate when it is due, over
// cc, the connection of the attached session: the bridge signs a renewal
// only for the identity of a verified, unrevoked certificate, which that
// connection has. It runs while the session stream is attached and must
// return when ctx ends. It must not close cc. A new certificate takes
// effect at the next handshake, so the session is not dropped.
// internal/enroll's Renewer.Run is the implementation.
type RenewFunc func(ctx context.Context, cc grpc.ClientConnInterface)

// startRenewal runs the renewal for one attached stream and returns the
// function that stops it and waits for it.
func (l *loop) startRenewal(parent context.Context, cc grpc.ClientConnInterface) (stop func()) {
	ctx, cancel := context.WithCancel(parent)
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.w.renew(ctx, cc)
	}()
	return func() {
		cancel()
		<-done
	}
}
