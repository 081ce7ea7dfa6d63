package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Name errors a caller may branch on.
var (
	// ErrNameReserved is returned for a name that would collide with the
	// CA's own files (ca.crt, ca.key).
	ErrNameReserved = errors.New("name is reserved")
	// ErrNameTaken is returned for a name that a certificate or token of
	// another role already carries: revoking or listing by name would no
	// longer say which one is meant.
	ErrNameTaken = errors.New("name is taken by another role")
)

// reservedNames are the names no certificate may carry, compared without
// regard to case so that they stay reserved on case-insensitive
// filesystems.
var reservedNames = []string{"ca"}

// IssueRequest is what `certs issue` asks for: a certificate and a new key
// written to OutDir as Name.crt and Name.key.
type IssueRequest struct {
	Role Role
	// Name is the identity's name and the files' base name. It follows the
	// rules of every identity name (see IdentityURI), so it is a plain file
	// name: no separators, no leading dot.
	Name string
	// SANs are the bridge's DNS names and IP addresses (bridge only). The
	// default is Name if it is a DNS name, localhost, 127.0.0.1 and ::1.
	SANs []string
	// Lifetime of the certificate; zero means DefaultLeafLifetime.
	Lifetime time.Duration
	// OutDir is where the files go; empty means the CA directory. It is
	// created (0700) if missing.
	OutDir string
	// Force replaces an existing Name.crt and Name.key.
	Force bool
	// Reenroll allows an identity revoked by name again (a new
	// generation); without it such a name is refused.
	Reenroll bool
}

// IssuedFiles says where a certificate and its key were written.
type IssuedFiles struct {
	CertFile, KeyFile string
	Cert              *x509.Certificate
}

// validate checks what does not depend on the CA's state.
func (req IssueRequest) validate() error {
	switch req.Role {
	case RoleBridge:
	case RoleWorker, RoleSender, RoleAdmin:
		if len(req.SANs) > 0 {
			return errors.New("SANs apply to the bridge role only")
		}
	default:
		return fmt.Errorf("role %q: want bridge, worker, sender or admin", req.Role)
	}
	if err := validateName(req.Name); err != nil {
		return err
	}
	if req.Lifetime < 0 {
		return fmt.Errorf("lifetime %v is negative", req.Lifetime)
	}
	return nil
}

// checkNewName refuses reserved names and names that a certificate or
// token of another role carries. The caller holds the CA lock.
func (ca *CA) checkNewName(role Role, name string) error {
	for _, r := range reservedNames {
		if strings.EqualFold(name, r) {
			return fmt.Errorf("%q: %w (the CA's own files are %s and %s)", name, ErrNameReserved, CACertFile, CAKeyFile)
		}
	}
	issued, err := ca.Issued()
	if err != nil {
		return err
	}
	for _, ic := range issued {
		if ic.Name == name && ic.Role != role {
			return fmt.Errorf("%q: %w: a %s certificate (serial %s) has it", name, ErrNameTaken, ic.Role, ic.Serial)
		}
	}
	toks, err := ca.Tokens().List()
	if err != nil {
		return err
	}
	for _, tr := range toks {
		if tr.Name == name && tr.Role != role {
			return fmt.Errorf("%q: %w: a %s enrollment token has it", name, ErrNameTaken, tr.Role)
		}
	}
	return nil
}

// IssueFiles issues a certificate and a new ECDSA P-256 key as req says and
// writes them to OutDir/Name.crt (0644; for the bridge followed by the CA
// certificate) and OutDir/Name.key (0600). It checks everything before it
// writes anything: the name, the role, a name of another role, a revoked
// identity (unless req.Reenroll), existing files (unless req.Force; never a
// non-regular file). The certificate is recorded in issued.json only after
// both files are written.
func (ca *CA) IssueFiles(req IssueRequest) (IssuedFiles, error) {
	if err := req.validate(); err != nil {
		return IssuedFiles{}, fmt.Errorf("issue: %w", err)
	}
	spec := leafSpec{role: req.Role, name: req.Name, usage: x509.ExtKeyUsageClientAuth}
	if req.Role == RoleBridge {
		sans := req.SANs
		if len(sans) == 0 {
			sans = []string{"localhost", "127.0.0.1", "::1"}
			if validateDNSName(req.Name) == nil {
				sans = append([]string{req.Name}, sans...)
			}
		}
		dns, ips, err := splitServerNames(sans)
		if err != nil {
			return IssuedFiles{}, fmt.Errorf("issue bridge certificate %q: %w", req.Name, err)
		}
		spec.dns, spec.ips, spec.usage = dns, ips, x509.ExtKeyUsageServerAuth
	}
	out := req.OutDir
	if out == "" {
		out = ca.dir
	}
	files := IssuedFiles{CertFile: filepath.Join(out, req.Name+".crt"), KeyFile: filepath.Join(out, req.Name+".key")}

	unlock, err := ca.lock()
	if err != nil {
		return IssuedFiles{}, err
	}
	defer unlock()
	if err := ca.checkNewName(req.Role, req.Name); err != nil {
		return IssuedFiles{}, fmt.Errorf("issue: %w", err)
	}
	if fi, err := os.Stat(out); err == nil && !fi.IsDir() {
		return IssuedFiles{}, fmt.Errorf("issue: output directory %s is not a directory", out)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return IssuedFiles{}, fmt.Errorf("issue: %w", err)
	}
	for _, p := range []string{files.CertFile, files.KeyFile} {
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return IssuedFiles{}, fmt.Errorf("issue: %w", err)
		case !req.Force:
			return IssuedFiles{}, fmt.Errorf("issue: %s: %w; pass --force to replace it", p, fs.ErrExist)
		case !fi.Mode().IsRegular():
			return IssuedFiles{}, fmt.Errorf("issue: %s is not a regular file; refusing to replace it", p)
		}
	}
	if rv, err := ca.Revocations(); err != nil {
		return IssuedFiles{}, err
	} else if ir, ok := rv.Identity(req.Role, req.Name); ok && ir.Disabled() && !req.Reenroll {
		return IssuedFiles{}, fmt.Errorf("issue: %w: %s %q was revoked at %s; pass --reenroll to issue for it again",
			ErrIdentityRevoked, req.Role, req.Name, ir.RevokedAt.UTC().Format(time.RFC3339))
	}
	if err := os.MkdirAll(out, 0o700); err != nil {
		return IssuedFiles{}, fmt.Errorf("issue: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return IssuedFiles{}, fmt.Errorf("issue: generate key: %w", err)
	}
	keyPEM, err := marshalKeyPEM(key)
	if err != nil {
		return IssuedFiles{}, fmt.Errorf("issue: %w", err)
	}
	spec.pub = key.Public()
	der, err := ca.issueLocked(spec, req.Lifetime, issueAuth{
		reenroll: req.Reenroll,
		write: func(der []byte) error {
			return writePairFiles(files, ca.leafPEM(spec.role, der), keyPEM, !req.Force)
		},
	})
	if err != nil {
		return IssuedFiles{}, fmt.Errorf("issue %s certificate for %q: %w", req.Role, req.Name, err)
	}
	files.Cert, err = x509.ParseCertificate(der)
	return files, err
}

// RenewFiles renews the certificate in certFile, which this CA must have
// issued (it may have expired): a new key and a certificate for the same
// role and name (and for the bridge the same DNS names and IP addresses)
// replace keyFile and certFile, each atomically, the key first. A running
// bridge or peer that reloads the files picks them up. An identity revoked
// by name is refused (ErrIdentityRevoked).
func (ca *CA) RenewFiles(certFile, keyFile string, lifetime time.Duration) (IssuedFiles, error) {
	data, err := os.ReadFile(certFile)
	if err != nil {
		return IssuedFiles{}, fmt.Errorf("renew: %w", err)
	}
	chain, err := parseCertsPEM(data)
	if err != nil {
		return IssuedFiles{}, fmt.Errorf("renew: %s: %w", certFile, err)
	}
	old := chain[0]
	if err := old.CheckSignatureFrom(ca.cert); err != nil {
		return IssuedFiles{}, fmt.Errorf("renew: %s was not issued by the CA in %s: %w", certFile, ca.dir, err)
	}
	role, name, err := IdentityOf(old)
	if err != nil {
		return IssuedFiles{}, fmt.Errorf("renew: %s: %w", certFile, err)
	}
	spec := leafSpec{role: role, name: name, usage: x509.ExtKeyUsageClientAuth}
	if role == RoleBridge {
		spec.dns, spec.ips, spec.usage = old.DNSNames, append([]net.IP(nil), old.IPAddresses...), x509.ExtKeyUsageServerAuth
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return IssuedFiles{}, fmt.Errorf("renew: generate key: %w", err)
	}
	keyPEM, err := marshalKeyPEM(key)
	if err != nil {
		return IssuedFiles{}, fmt.Errorf("renew: %w", err)
	}
	spec.pub = key.Public()
	files := IssuedFiles{CertFile: certFile, KeyFile: keyFile}
	der, err := ca.issue(spec, lifetime, issueAuth{
		write: func(der []byte) error {
			return writePairFiles(files, ca.leafPEM(role, der), keyPEM, false)
		},
	})
	if err != nil {
		return IssuedFiles{}, fmt.Errorf("renew %s certificate for %q: %w", role, name, err)
	}
	files.Cert, err = x509.ParseCertificate(der)
	return files, err
}

// leafPEM is what a certificate file holds: the leaf, and for the bridge
// the CA certificate after it.
func (ca *CA) leafPEM(role Role, der []byte) []byte {
	if role == RoleBridge {
		return ca.serverCertPEM(der)
	}
	return encodePEM(pemCertificate, der)
}

// writePairFiles writes the key and the certificate: both are staged in
// temporary files first, so a failure to write leaves both old files as
// they were, then the key and the certificate are moved into place in that
// order. With exclusive, neither may exist yet.
func writePairFiles(f IssuedFiles, certPEM, keyPEM []byte, exclusive bool) error {
	keyTmp, err := stageFile(f.KeyFile, keyPEM, KeyFileMode)
	if err != nil {
		return err
	}
	certTmp, err := stageFile(f.CertFile, certPEM, CertFileMode)
	if err != nil {
		os.Remove(keyTmp)
		return err
	}
	if err := publish(keyTmp, f.KeyFile, exclusive); err != nil {
		os.Remove(certTmp)
		return err
	}
	if err := publish(certTmp, f.CertFile, exclusive); err != nil {
		if exclusive {
			os.Remove(f.KeyFile) // ours: linked just above
		}
		return err
	}
	for _, dir := range []string{filepath.Dir(f.KeyFile), filepath.Dir(f.CertFile)} {
		if err := syncDir(dir); err != nil {
			return fmt.Errorf("write %s: %w", f.CertFile, err)
		}
	}
	return nil
}

// stageFile writes data to a synced temporary file beside path with mode
// perm and returns its name.
func stageFile(path string, data []byte, perm os.FileMode) (tmp string, err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return "", fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err = f.Chmod(perm); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return f.Name(), nil
}

// publish moves a staged file to path: by rename, which replaces path, or,
// with exclusive, by hard link, which fails if path exists. Either way the
// staged file is gone afterwards.
func publish(tmp, path string, exclusive bool) error {
	if !exclusive {
		if err := os.Rename(tmp, path); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("write %s: %w", path, err)
		}
		return nil
	}
	err := os.Link(tmp, path)
	os.Remove(tmp)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("write %s: %w", path, fs.ErrExist)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
