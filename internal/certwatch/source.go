package certwatch

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

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
		own, err := ReadCertificates(certFile)
		if err != nil {
			return Set{}, err
		}
		cas, err := ReadCertificates(caFile)
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
		cas, err := ReadCertificates(files[2])
		if err != nil {
			return Set{}, err
		}
		return Set{Own: r.Leaf(), OwnFile: files[0], CAs: cas, CAFile: files[2]}, nil
	})
}

// ReadCertificates reads the PEM certificates of file, in order. A file
// without any is an error.
func ReadCertificates(file string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	cs, err := ParseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return cs, nil
}

// ParseCertificates parses the PEM "CERTIFICATE" blocks of data, in order,
// skipping other blocks. Data without any certificate is an error.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	var cs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(cs)+1, err)
		}
		cs = append(cs, c)
	}
	if len(cs) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return cs, nil
}
