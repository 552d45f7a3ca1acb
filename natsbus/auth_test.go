package natsbus

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// testPKI writes a throwaway CA and a server certificate for 127.0.0.1
// into dir and returns the CA file and the server's TLS config.
func testPKI(t *testing.T, dir string) (caFile string, cfg *tls.Config) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "demur test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{{
		Certificate: [][]byte{srvDER}, PrivateKey: srvKey,
	}}}
	return caFile, cfg
}

// authServer starts a JetStream server on a loopback port that requires
// user/password or a token (whichever is set) and TLS when tlsCfg is set.
func authServer(t *testing.T, user, pass, token string, tlsCfg *tls.Config) string {
	t.Helper()
	opts := &server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(),
		NoLog: true, NoSigs: true, Username: user, Password: pass, Authorization: token,
		MaxPayload: DefaultMaxPayload,
	}
	if tlsCfg != nil {
		opts.TLS, opts.TLSConfig, opts.TLSTimeout = true, tlsCfg, 2
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	return srv.ClientURL()
}

func TestConnectTLSAndPassword(t *testing.T) {
	dir := t.TempDir()
	caFile, tlsCfg := testPKI(t, dir)
	url := authServer(t, "demur", "s3cret-pa55", "", tlsCfg)
	ctx := timeoutCtx(t, 20*time.Second)

	t.Run("NoCredentials", func(t *testing.T) {
		_, err := Connect(ctx, url, ConnectOptions{TLSCAFile: caFile, ConnectTimeout: 5 * time.Second})
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Fatalf("connect without credentials: %v, want an authorization error", err)
		}
	})
	t.Run("WrongPassword", func(t *testing.T) {
		_, err := Connect(ctx, url, ConnectOptions{User: "demur", Password: "wrong-guess", TLSCAFile: caFile,
			ConnectTimeout: 5 * time.Second})
		if err == nil {
			t.Fatal("connected with a wrong password")
		}
		if strings.Contains(err.Error(), "wrong-guess") {
			t.Fatalf("error echoes the password: %v", err)
		}
	})
	t.Run("UnknownCA", func(t *testing.T) {
		// Without the CA the server's certificate is not trusted: the
		// client must fail rather than fall back to anything weaker.
		_, err := Connect(ctx, url, ConnectOptions{User: "demur", Password: "s3cret-pa55", ConnectTimeout: 5 * time.Second})
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("connect without the CA: %v, want a certificate error", err)
		}
	})
	t.Run("OK", func(t *testing.T) {
		b, err := Connect(ctx, url, ConnectOptions{User: "demur", Password: "s3cret-pa55", TLSCAFile: caFile})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		st, err := b.Conn().TLSConnectionState()
		if err != nil || !st.HandshakeComplete || st.Version < tls.VersionTLS12 {
			t.Fatalf("connection not over TLS: %+v, %v", st.Version, err)
		}
		// The bus works over it: a round trip on a job of its own.
		job := roundTripJob(t, b)
		if err := b.PurgeJob(ctx, job); err != nil {
			t.Fatal(err)
		}
		if _, err := b.KeyValue(ctx, LeasesBucket); err != nil {
			t.Fatal(err)
		}
	})
}

// TestConnectTLSRefusesPlainServer: with a CA configured the client insists
// on TLS, so credentials never go to a server that would take them in the
// clear.
func TestConnectTLSRefusesPlainServer(t *testing.T) {
	caFile, _ := testPKI(t, t.TempDir())
	url := authServer(t, "demur", "s3cret-pa55", "", nil)
	ctx := timeoutCtx(t, 10*time.Second)
	b, err := Connect(ctx, url, ConnectOptions{User: "demur", Password: "s3cret-pa55", TLSCAFile: caFile,
		ConnectTimeout: 5 * time.Second})
	if err == nil {
		b.Close()
		t.Fatal("connected without TLS although a CA was configured")
	}
	if !strings.Contains(strings.ToLower(err.Error()), "secure") && !strings.Contains(strings.ToLower(err.Error()), "tls") {
		t.Fatalf("unexpected error: %v", err)
	}
}

func TestConnectToken(t *testing.T) {
	url := authServer(t, "", "", "tok-123456", nil)
	ctx := timeoutCtx(t, 10*time.Second)
	if _, err := Connect(ctx, url, ConnectOptions{Token: "nope", ConnectTimeout: 5 * time.Second}); err == nil {
		t.Fatal("connected with a wrong token")
	}
	b, err := Connect(ctx, url, ConnectOptions{Token: "tok-123456"})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
}
