package bridge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/gearbridge/gearbridge/certs"
)

// Identity is who is calling, taken from the verified client certificate.
type Identity struct {
	Name string
	Role Role
	// Serial is the certificate's serial (certs.SerialOf), so that a
	// session can be closed when its certificate is revoked.
	Serial string
	// NotAfter is the end of the certificate's validity: a session is
	// closed then unless the bridge renewed its certificate.
	NotAfter time.Time
}

// identityFrom reads the caller's identity from its client certificate.
// Without CertsDir the TLS handshake has verified the chain already. With
// CertsDir the handshake admits clients without certificates (for
// enrollment), so the certificate is verified here: CA, validity period,
// role and revocation. Every refusal is Unauthenticated with the reason.
func (b *Bridge) identityFrom(ctx context.Context) (Identity, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Identity{}, status.Error(codes.Unauthenticated, "no peer information")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return Identity{}, status.Error(codes.Unauthenticated, "connection is not TLS")
	}
	if b.cfg.CertsDir != "" {
		leaf, role, name, err := b.servedTLS().r.VerifyClient(info.State, time.Now(), b.revoked.VerifyPeer)
		if errors.Is(err, certs.ErrNoClientCert) {
			return Identity{}, status.Error(codes.Unauthenticated, "no client certificate (only enrollment works without one)")
		}
		if err != nil {
			return Identity{}, status.Errorf(codes.Unauthenticated, "client certificate refused: %v", err)
		}
		return Identity{Name: name, Role: Role(role), Serial: certs.SerialOf(leaf), NotAfter: leaf.NotAfter}, nil
	}
	chains := info.State.VerifiedChains
	if len(chains) == 0 || len(chains[0]) == 0 {
		return Identity{}, status.Error(codes.Unauthenticated, "no verified client certificate")
	}
	leaf := chains[0][0]
	role, name, err := certs.IdentityOf(leaf)
	if err != nil {
		return Identity{}, status.Errorf(codes.Unauthenticated, "client certificate: %v", err)
	}
	// With Config.RevocationsFile: checked per call, as the connection
	// may be older than the revocation.
	if b.revoked != nil {
		if err := b.revoked.VerifyPeer(leaf); err != nil {
			return Identity{}, status.Errorf(codes.Unauthenticated, "client certificate refused: client %s %q: %v", role, name, err)
		}
	}
	return Identity{Name: name, Role: Role(role), Serial: certs.SerialOf(leaf), NotAfter: leaf.NotAfter}, nil
}

// authorize checks that the caller's certificate carries role and that the
// authorization rules give its identity that role. Both must allow.
// Refusals are logged once per interval per peer host or identity and
// reason (a client retrying with a bad certificate would flood the log
// otherwise).
func (b *Bridge) authorize(ctx context.Context, role Role) (Identity, error) {
	peer := peerAddr(ctx)
	id, err := b.identityFrom(ctx)
	if err != nil {
		// Per host and reason: a client retrying with the same bad
		// certificate is one line per interval, a different refusal is seen.
		b.rl.Warn(b.log, hostOf(peer)+" "+status.Convert(err).Message(), "refused unauthenticated call", "peer", peer, "err", err)
		return Identity{}, err
	}
	if id.Role != role {
		err := status.Errorf(codes.PermissionDenied, "certificate of %q has role %q, this service needs role %q", id.Name, id.Role, role)
		b.rl.Warn(b.log, id.Name+" "+string(role), "refused call", "identity", id.Name, "peer", peer, "err", err)
		return Identity{}, err
	}
	if !b.authz().HasRole(id.Name, role) {
		err := status.Errorf(codes.PermissionDenied, "identity %q is not allowed the %s role by the authorization rules", id.Name, role)
		b.rl.Warn(b.log, id.Name+" "+string(role), "refused call", "identity", id.Name, "peer", peer, "err", err)
		return Identity{}, err
	}
	return id, nil
}

// checkIdentifier allows a worker's identifier: its certificate identity
// (an empty identifier defaults to it), or one a worker rule lists for the
// identity under identifiers. The identifier names the worker's status
// queue and its results, so another certificate must not take it.
func (b *Bridge) checkIdentifier(id Identity, identifier string) error {
	if b.authz().AllowIdentifier(id.Name, identifier) {
		return nil
	}
	return status.Errorf(codes.PermissionDenied,
		"identity %q may not call itself %q: a worker's identifier is its certificate identity, unless an authorization rule for the identity lists it under identifiers",
		id.Name, identifier)
}

func (id Identity) String() string { return fmt.Sprintf("%s/%s", id.Role, id.Name) }
