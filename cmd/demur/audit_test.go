package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/audit"
	"github.com/demurhq/demur/storeurl"
)

// auditJob runs smallSpec once and returns its output directory and store URL.
func auditJob(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	spec := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(spec, []byte(smallSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	if code := execute([]string{"run", spec, "--out", out, "--json"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("run: exit %d: %s", code, stderr.String())
	}
	return out, "sqlite://" + filepath.Join(out, "demur.db")
}

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := execute(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestAuditVerify(t *testing.T) {
	out, url := auditJob(t)
	keys := filepath.Join(out, "keys")
	for _, f := range []string{audit.PrivateKeyFile, audit.PublicKeyFile, audit.WitnessFile} {
		if _, err := os.Stat(filepath.Join(keys, f)); err != nil {
			t.Fatalf("run did not create %s: %v", f, err)
		}
	}
	code, stdout, stderr := run(t, "audit", "verify", "--store", url, "--json")
	if code != exitOK {
		t.Fatalf("verify: exit %d\n%s%s", code, stdout, stderr)
	}
	var v verifyOut
	if err := json.Unmarshal([]byte(stdout), &v); err != nil {
		t.Fatal(err)
	}
	if !v.OK || v.Records < 30 || v.Signatures < 2 || v.Anchors != 1 || v.Blobs != 6 || v.Unattested != 1 {
		t.Fatalf("verify: %s", stdout)
	}

	// Change one decision in the file, as someone with write access could.
	db, err := sql.Open("sqlite", filepath.Join(out, "demur.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var seq int64
	if err := db.QueryRow("SELECT seq FROM records WHERE kind = 'decision' ORDER BY seq LIMIT 1").Scan(&seq); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("UPDATE records SET payload = replace(payload, 'accept', 'abort') WHERE seq = ?", seq); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = run(t, "audit", "verify", "--store", url)
	if code != exitProblem {
		t.Fatalf("verify a changed log: exit %d, want 1\n%s", code, stdout)
	}
	want := "small-3/" + itoa(seq)
	if !strings.Contains(stdout, want) || !strings.Contains(stderr, "first bad record "+want) {
		t.Fatalf("verify does not name %s:\n%s%s", want, stdout, stderr)
	}
	code, stdout, _ = run(t, "audit", "verify", "--store", url, "--json")
	if err := json.Unmarshal([]byte(stdout), &v); err != nil || code != exitProblem {
		t.Fatalf("verify --json: exit %d, %v", code, err)
	}
	if v.OK || v.First == nil || v.First.Seq != seq || v.First.Kind != audit.ProblemHash {
		t.Fatalf("verify --json: %s", stdout)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestAuditExportVerifyOffline(t *testing.T) {
	out, url := auditJob(t)
	file := filepath.Join(t.TempDir(), "export.jsonl")
	code, _, stderr := run(t, "audit", "export", "--store", url, "-o", file)
	if code != exitOK || !strings.Contains(stderr, "exported") {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	pub := filepath.Join(t.TempDir(), "demur.pub")
	if code, _, stderr := run(t, "audit", "key", "export", "--store", url, "-o", pub); code != exitOK {
		t.Fatalf("key export: exit %d: %s", code, stderr)
	}
	got, _ := os.ReadFile(pub)
	want, _ := os.ReadFile(filepath.Join(out, "keys", audit.PublicKeyFile))
	if len(got) == 0 || !bytes.Equal(got, want) {
		t.Fatalf("exported key %q, want the .pub file %q", got, want)
	}
	// Offline: no store, no key directory, only the file and the key.
	code, stdout, stderr := run(t, "audit", "verify", "--file", file, "--pubkey", pub)
	if code != exitOK || !strings.Contains(stdout, "sound") {
		t.Fatalf("verify --file: exit %d\n%s%s", code, stdout, stderr)
	}
	data, _ := os.ReadFile(file)
	bad := bytes.Replace(data, []byte(`"words":`), []byte(`"words":1`), 1)
	if err := os.WriteFile(file, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, stdout, _ := run(t, "audit", "verify", "--file", file, "--pubkey", pub); code != exitProblem {
		t.Fatalf("verify an edited export: exit %d\n%s", code, stdout)
	}
	other := filepath.Join(t.TempDir(), "other.pub")
	k, err := audit.LoadOrCreateKey(filepath.Dir(other))
	if err != nil {
		t.Fatal(err)
	}
	pem, _ := audit.MarshalPublicKey(k.Public().(ed25519.PublicKey))
	os.WriteFile(other, pem, 0o644)
	if code, stdout, _ := run(t, "audit", "verify", "--file", file+".none", "--pubkey", other); code != exitUsage {
		t.Fatalf("verify a missing file: exit %d\n%s", code, stdout)
	}
	if code, stdout, _ := run(t, "audit", "verify", "--store", url, "--pubkey", other); code != exitProblem || !strings.Contains(stdout, "another key") {
		t.Fatalf("verify with another key: exit %d\n%s", code, stdout)
	}
}

func TestAuditExplain(t *testing.T) {
	_, url := auditJob(t)
	code, stdout, stderr := run(t, "audit", "explain", "--store", url)
	if code != exitOK || !strings.Contains(stdout, "job small-3:") {
		t.Fatalf("explain list: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = run(t, "audit", "explain", "--store", url, "--section", "c01s02")
	if code != exitOK {
		t.Fatalf("explain section: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"section c01s02", "c01s02 attempt 1", "verdict:", "decision:", "✓", "action:", "overrides: none", "outcome: accepted"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("explain output lacks %q:\n%s", want, stdout)
		}
	}
	code, stdout, _ = run(t, "audit", "explain", "--store", url, "--turn", "c01s02/1", "--json")
	var s audit.Story
	if err := json.Unmarshal([]byte(stdout), &s); err != nil || code != exitOK {
		t.Fatalf("explain --turn --json: exit %d, %v\n%s", code, err, stdout)
	}
	if len(s.Attempts) != 1 || s.Attempts[0].Decision == nil || s.Attempts[0].Verdict == nil || s.Attempts[0].Output == "" {
		t.Fatalf("story: %+v", s)
	}
	for _, args := range [][]string{{"--section", "c09s09"}, {"--turn", "c01s02"}, {"--turn", "c01s02/9"}, {"--job", "nope"}} {
		if code, _, stderr := run(t, append([]string{"audit", "explain", "--store", url}, args...)...); code != exitUsage {
			t.Errorf("explain %v: exit %d, want 2: %s", args, code, stderr)
		}
	}
}

func TestAuditNoStore(t *testing.T) {
	t.Setenv(storeEnv, "")
	t.Chdir(t.TempDir())
	if code, _, stderr := run(t, "audit", "verify"); code != exitUsage || !strings.Contains(stderr, "no store") {
		t.Fatalf("verify without a store: exit %d: %s", code, stderr)
	}
	if code, _, _ := run(t, "audit", "verify", "--store", "sqlite://missing.db"); code != exitUsage {
		t.Fatalf("verify a missing file: exit %d", code)
	}
	if _, err := os.Stat("missing.db"); err == nil {
		t.Fatal("verify created the store it was asked to check")
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestAuditTail(t *testing.T) {
	_, url := auditJob(t)
	code, stdout, _ := run(t, "audit", "tail", "--store", url, "-n", "3")
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if code != exitOK || len(lines) != 3 || !strings.Contains(lines[2], "checkpoint") || !strings.Contains(lines[1], "job.end") {
		t.Fatalf("tail -n 3: exit %d\n%s", code, stdout)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := storeurl.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- tailLog(ctx, st, &out, "", 1, true, 10*time.Millisecond) }()
	// Append only once tail has printed its last existing record: before
	// that, the new record could be taken for the one -n 1 asks for.
	for wait := time.Now().Add(5 * time.Second); !strings.Contains(out.String(), "\n") && time.Now().Before(wait); {
		time.Sleep(2 * time.Millisecond)
	}
	payload, _ := json.Marshal(demur.AgentPayload{Agent: "agent-09", State: "retired"})
	if err := st.Append(ctx, &demur.Record{Job: "small-3", Stream: "small-3", Kind: demur.RecAgent, Actor: "router", Payload: payload}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "agent-09 retired") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("tail -f ended with %v", err)
	}
	if got := out.String(); !strings.Contains(got, "agent-09 retired") || strings.Count(got, "\n") != 2 {
		t.Fatalf("tail -f printed:\n%s", got)
	}
}
