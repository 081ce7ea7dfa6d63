package certs_test

import (
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"

	"github.com/gearbridge/gearbridge/certs"
)

func ExampleParseIdentityURI() {
	role, name, err := certs.ParseIdentityURI("gearbridge://worker/web-01.example.com")
	fmt.Println(role, name, err)

	_, _, err = certs.ParseIdentityURI("gearbridge://worker/../admin")
	fmt.Println(err != nil)
	// Output:
	// worker web-01.example.com <nil>
	// true
}

// A worker enrolling for the first time knows the bridge's address and the
// CA fingerprint the operator gave it (from CA.Fingerprint), but has no CA
// file yet. It verifies the bridge against the pinned CA, then saves the CA
// for later connections, which use ClientTLSConfig.
func ExamplePinnedClientTLSConfig() {
	const fingerprint = "sha256:3f1c..." // printed by the operator's CA
	cfg, err := certs.PinnedClientTLSConfig(fingerprint, "bridge.example.com")
	if err != nil {
		log.Fatal(err)
	}
	conn, err := tls.Dial("tcp", net.JoinHostPort("bridge.example.com", "4731"), cfg)
	if err != nil {
		log.Fatal(err) // wrong fingerprint, wrong name, or a leaf the CA did not sign
	}
	defer conn.Close()

	// ... present the enrollment token and a CSR from
	// certs.GenerateKeyAndCSR, receive the certificate ...

	ca, err := certs.PinnedCA(conn.ConnectionState(), fingerprint)
	if err != nil {
		log.Fatal(err)
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
	if err := certs.WriteFileAtomic(filepath.Join(os.TempDir(), "ca.crt"), caPEM, certs.CertFileMode); err != nil {
		log.Fatal(err)
	}
}
