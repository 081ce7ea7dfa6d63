package certs

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// PEM block types, as written by crypto/tls/generate_cert.go and openssl.
const (
	pemCertificate = "CERTIFICATE"
	pemPrivateKey  = "PRIVATE KEY" // PKCS #8
	pemCSR         = "CERTIFICATE REQUEST"
)

func encodePEM(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// marshalKeyPEM encodes key as a PKCS #8 "PRIVATE KEY" block.
func marshalKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	return encodePEM(pemPrivateKey, der), nil
}

// parseCertsPEM parses one or more CERTIFICATE blocks. Any other block type
// or trailing non-PEM data is an error rather than silently ignored.
func parseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != pemCertificate {
			return nil, fmt.Errorf("unexpected PEM block %q, want %q", b.Type, pemCertificate)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("trailing data after PEM certificates")
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return certs, nil
}

// ReadCertificates reads the PEM certificates of file, in order, with the
// rules of the files the CA writes: only CERTIFICATE blocks, at least one.
func ReadCertificates(file string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	cs, err := parseCertsPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return cs, nil
}

// parseKeyPEM parses a single PKCS #8 private key block.
func parseKeyPEM(data []byte) (crypto.Signer, error) {
	b, rest := pem.Decode(data)
	if b == nil {
		return nil, errors.New("no PEM private key found")
	}
	if b.Type != pemPrivateKey {
		return nil, fmt.Errorf("unexpected PEM block %q, want %q", b.Type, pemPrivateKey)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("trailing data after PEM private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", k)
	}
	return s, nil
}
