package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

func TestAgentUsage(t *testing.T) {
	for _, args := range [][]string{
		{"agent"}, // no --nats
		{"agent", "--nats", "nats://127.0.0.1:1", "--agents", "-1"},
		{"agent", "--nats", "nats://127.0.0.1:1", "--ack-wait", "1s"},
		{"agent", "--nats", "nats://127.0.0.1:1", "--nats-password-file", "x"}, // no --nats-user
		{"agent", "--nats", "nats://127.0.0.1:1", "--nats-cert", "c.pem"},      // no --nats-key
		{"status"}, // no --store
	} {
		var stdout, stderr bytes.Buffer
		if code := execute(args, &stdout, &stderr); code != exitUsage {
			t.Errorf("%v: exit %d, want %d; stderr %s", args, code, exitUsage, stderr.String())
		}
	}
}

// TestAgentSecretNotEchoed: a refused password read from its file never
// shows in what demur prints.
func TestAgentSecretNotEchoed(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: t.TempDir(), NoLog: true, NoSigs: true, Username: "demur", Password: "the-right-one"})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("hunter2-wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := execute([]string{"agent", "--nats", srv.ClientURL(), "--nats-user", "demur", "--nats-password-file", pw},
		&stdout, &stderr)
	if code != exitProblem {
		t.Fatalf("exit %d, want %d; stderr %s", code, exitProblem, stderr.String())
	}
	if out := stdout.String() + stderr.String(); strings.Contains(out, "hunter2") {
		t.Fatalf("the password was printed: %s", out)
	}
	if !strings.Contains(strings.ToLower(stderr.String()), "authorization") {
		t.Fatalf("stderr does not say why: %s", stderr.String())
	}
}
