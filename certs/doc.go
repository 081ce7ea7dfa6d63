// Package certs is gearbridge's private PKI: a small certificate authority
// that issues the certificates the bridge and its peers use for mutual
// TLS 1.3, a revocation list, and tls.Config builders that enforce the
// trust model and can reload certificates without a restart.
//
// # Identity
//
// Every leaf certificate carries exactly one URI SAN of the form
//
//	gearbridge://<role>/<name>
//
// where role is one of worker, sender, admin or bridge, and the subject
// common name repeats <name> for humans reading openssl output. The URI is
// authoritative: [IdentityOf] reads it, the CN is informational. Workers,
// senders and admins hold client certificates (ExtKeyUsageClientAuth); the
// bridge holds a server certificate (ExtKeyUsageServerAuth) whose DNS and IP
// SANs name the addresses workers dial.
//
// # CA directory
//
// [InitCA] creates a directory holding ca.crt (0644), ca.key (0600) and
// the revocation list revoked.json (0644). The CA records every certificate
// it signs in issued.json, so that certificates can be listed and revoked
// by name, and keeps one-time enrollment tokens in tokens.json (0600) as
// SHA-256 hashes only ([Tokens]). Files are always written with
// [WriteFileAtomic], so a crash never leaves a half-written key; the lists
// that several processes update are guarded by lock files.
//
// # Revocation
//
// [CA.RevokeName] revokes an identity, not only the certificates known at
// the time: every certificate of the identity whose NotBefore is at or
// before the revocation is refused, so one renewed from a revoked
// certificate before the revocation is refused as well, and the CA signs
// nothing more for the identity (no renewal, no enrollment with an older
// token) until the operator re-enrolls it explicitly. Signing and revoking
// take the same lock, so a renewal racing a revocation is covered by it.
// [CA.RevokeSerial] revokes one certificate. [Revocations.VerifyPeer]
// applies both.
//
// # Trust
//
// The bridge verifies client certificates against a pool holding only the
// gearbridge CA, never the system roots, and peers verify the bridge the same
// way. A peer that does not have the CA certificate yet (first enrollment)
// pins the CA by its fingerprint instead; see [PinnedClientTLSConfig].
//
// The package knows nothing about gRPC: callers wrap the returned
// *tls.Config in whatever transport credentials they use.
package certs
