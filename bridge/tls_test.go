package bridge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gearbridge/gearbridge/certs"
	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// TestRefusedWithoutValidCertificate: a worker without a client
// certificate, or with one from another CA, never gets a session.
func TestRefusedWithoutValidCertificate(t *testing.T) {
	e := newTestEnv(t, nil)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(e.ca.CertPEM())

	other, err := certs.InitCA(t.TempDir(), certs.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	crt, key, err := other.IssueClient(certs.RoleWorker, "w1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "w.crt"), crt, 0o644)
	writeFile(t, filepath.Join(dir, "w.key"), key, 0o600)
	foreign, err := tls.LoadX509KeyPair(filepath.Join(dir, "w.crt"), filepath.Join(dir, "w.key"))
	if err != nil {
		t.Fatal(err)
	}

	for name, tc := range map[string]*tls.Config{
		"no certificate":            {RootCAs: pool, ServerName: "bridge.test", MinVersion: tls.VersionTLS13},
		"certificate of another CA": {RootCAs: pool, ServerName: "bridge.test", MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{foreign}},
	} {
		t.Run(name, func(t *testing.T) {
			e.fake.add("service", serviceJob(t, "h", "s", time.Minute))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			st, err := pb.NewWorkerServiceClient(e.dialTLS(tc)).Work(ctx)
			if err == nil {
				_ = st.Send(&pb.WorkRequest{Msg: &pb.WorkRequest_Hello{Hello: hello(1, "service")}})
				_, err = st.Recv()
			}
			if code := status.Code(err); code != codes.Unavailable && code != codes.Unauthenticated {
				t.Fatalf("err = %v, want the handshake refused", err)
			}
			if n := e.fake.queued("service"); n == 0 {
				t.Fatal("a job was handed out")
			}
		})
	}
}
