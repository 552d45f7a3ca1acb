package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/override"
	"github.com/demurhq/demur/policy"
	"github.com/demurhq/demur/storeurl"
)

func TestServe(t *testing.T) {
	store := "sqlite://" + filepath.Join(t.TempDir(), "demur.db")
	st, err := storeurl.Open(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	secret, _, err := override.NewTokens(st, nil).Issue(context.Background(), "test", "vic", demur.RoleViewer, time.Hour)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, serveOptions{store: store, listen: "127.0.0.1:0"}, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no listening line: %v", err)
	}
	go io.Copy(io.Discard, pr)
	_, base, ok := strings.Cut(strings.TrimSpace(line), "listening on ")
	if !ok {
		t.Fatalf("listening line %q", line)
	}

	get := func(path, secret string) int {
		req, _ := http.NewRequest("GET", base+path, nil)
		if secret != "" {
			req.Header.Set("Authorization", "Bearer "+secret)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get("/healthz", ""); c != http.StatusOK {
		t.Errorf("healthz: %d", c)
	}
	if c := get("/api/overrides", ""); c != http.StatusUnauthorized {
		t.Errorf("list without token: %d", c)
	}
	if c := get("/api/overrides", secret); c != http.StatusOK {
		t.Errorf("list with token: %d", c)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve after cancel: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func TestServeUsageErrors(t *testing.T) {
	t.Setenv(storeEnv, "")
	if code, _, _ := runCLI(t, "serve"); code != exitUsage {
		t.Errorf("no store: exit %d", code)
	}
	store := "sqlite://" + filepath.Join(t.TempDir(), "demur.db")
	if code, _, _ := runCLI(t, "serve", "--store", store, "--listen", "not-an-address"); code != exitUsage {
		t.Errorf("bad listen address: exit %d", code)
	}
}

// TestPolicyRequirements: serve takes who may request an override from the
// policy file's rules for the job's task type.
func TestPolicyRequirements(t *testing.T) {
	ctx := context.Background()
	st, err := storeurl.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "demur.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	payload, _ := json.Marshal(demur.JobStartPayload{TaskType: "long_form_document"})
	if err := st.Append(ctx, &demur.Record{Job: "j-1", Stream: "j-1", Kind: demur.RecJobStart, Actor: "coordinator", Payload: payload}); err != nil {
		t.Fatal(err)
	}
	pf, err := policy.Parse("p.yaml", []byte(`version: 1
task_types:
  long_form_document:
    overrides: {force: {role: operator, approvals: 1}}
`))
	if err != nil {
		t.Fatal(err)
	}
	req := policyRequirements(ctx, st, pf)
	if role, n := req("j-1", demur.ActionForce); role != demur.RoleOperator || n != 1 {
		t.Fatalf("long-form force: %s × %d", role, n)
	}
	if role, n := req("unknown-job", demur.ActionForce); role != demur.RoleAdmin || n != 2 {
		t.Fatalf("unknown job's force: %s × %d, want the defaults", role, n)
	}
}
