package certwatch

import (
	"github.com/gearbridge/gearbridge/certs"
)

// Source gives a Watcher the certificates to watch. It is asked on every
// check, so that renewals and reloads show.
type Source interface {
	Certificates() (Set, error)
}

// SourceFunc adapts a function to Source.
type SourceFunc func() (Set, error)

// Certificates calls f.
func (f SourceFunc) Certificates() (Set, error) { return f() }

// Files watches the first certificate of certFile (the process's own; a
// chain may follow it) and every certificate of caFile, read anew on every
// check.
func Files(certFile, caFile string) Source {
	return SourceFunc(func() (Set, error) {
		own, err := certs.ReadCertificates(certFile)
		if err != nil {
			return Set{}, err
		}
		cas, err := certs.ReadCertificates(caFile)
		if err != nil {
			return Set{}, err
		}
		return Set{Own: own[0], OwnFile: certFile, CAs: cas, CAFile: caFile}, nil
	})
}

// Reloaded watches the certificate r serves, which changes when r reloads,
// and the CA file r reads.
func Reloaded(r *certs.Reloader) Source {
	return SourceFunc(func() (Set, error) {
		files := r.Files() // certificate, key, CA
		cas, err := certs.ReadCertificates(files[2])
		if err != nil {
			return Set{}, err
		}
		return Set{Own: r.Leaf(), OwnFile: files[0], CAs: cas, CAFile: files[2]}, nil
	})
}
