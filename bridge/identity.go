package bridge

import (
	"context"
	"fmt"

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
}

// identityFrom reads the caller's identity from the verified TLS chain. It
// returns Unauthenticated when there is none: the listener requires client
// certificates, so this only happens on a misconfigured server.
func identityFrom(ctx context.Context) (Identity, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Identity{}, status.Error(codes.Unauthenticated, "no peer information")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return Identity{}, status.Error(codes.Unauthenticated, "connection is not TLS")
	}
	chains := info.State.VerifiedChains
	if len(chains) == 0 || len(chains[0]) == 0 {
		return Identity{}, status.Error(codes.Unauthenticated, "no verified client certificate")
	}
	role, name, err := certs.IdentityOf(chains[0][0])
	if err != nil {
		return Identity{}, status.Errorf(codes.Unauthenticated, "client certificate: %v", err)
	}
	return Identity{Name: name, Role: Role(role)}, nil
}

// authorize checks that the caller's certificate carries role and that the
// authorization rules give its identity that role. Both must allow.
func (b *Bridge) authorize(ctx context.Context, role Role) (Identity, error) {
	id, err := identityFrom(ctx)
	if err != nil {
		b.log.Warn("refused unauthenticated call", "err", err)
		return Identity{}, err
	}
	if id.Role != role {
		err := status.Errorf(codes.PermissionDenied, "certificate of %q has role %q, this service needs role %q", id.Name, id.Role, role)
		b.log.Warn("refused call", "identity", id.Name, "err", err)
		return Identity{}, err
	}
	if !b.authz().HasRole(id.Name, role) {
		err := status.Errorf(codes.PermissionDenied, "identity %q is not allowed the %s role by the authorization rules", id.Name, role)
		b.log.Warn("refused call", "identity", id.Name, "err", err)
		return Identity{}, err
	}
	return id, nil
}

func (id Identity) String() string { return fmt.Sprintf("%s/%s", id.Role, id.Name) }
