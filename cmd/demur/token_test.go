package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/demurhq/demur/override"
	"github.com/demurhq/demur/storeurl"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := execute(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestTokenIssueListRevoke(t *testing.T) {
	store := "sqlite://" + filepath.Join(t.TempDir(), "demur.db")
	code, out, errs := runCLI(t, "token", "issue", "--store", store, "--owner", "Alice", "--role", "admin", "--ttl", "2h", "--json")
	if code != exitOK {
		t.Fatalf("issue: exit %d: %s", code, errs)
	}
	var issued tokenOut
	if err := json.Unmarshal([]byte(out), &issued); err != nil {
		t.Fatalf("issue output %q: %v", out, err)
	}
	if issued.Owner != "alice" || issued.Role != "admin" || issued.Status != "active" ||
		!strings.HasPrefix(issued.Secret, override.SecretPrefix) || issued.Expires.Sub(issued.Issued).Hours() != 2 {
		t.Errorf("issued %+v", issued)
	}

	// The printed secret authenticates against the store.
	st, err := storeurl.Open(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := override.NewTokens(st, nil).Authenticate(context.Background(), issued.Secret)
	st.Close()
	if err != nil || tok.ID != issued.ID {
		t.Fatalf("authenticate printed secret: %v %+v", err, tok)
	}

	t.Setenv(storeEnv, store)
	code, out, _ = runCLI(t, "token", "issue", "--owner", "bob", "--role", "viewer")
	if code != exitOK || !strings.Contains(out, "issued to bob (viewer)") || !strings.Contains(out, override.SecretPrefix) {
		t.Errorf("human issue: exit %d: %s", code, out)
	}
	code, out, _ = runCLI(t, "token", "list", "--json")
	if code != exitOK {
		t.Fatalf("list: exit %d", code)
	}
	if strings.Contains(out, issued.Secret) || strings.Contains(out, "hash") || strings.Contains(out, override.SecretPrefix) {
		t.Errorf("list shows secrets or hashes: %s", out)
	}
	var list struct{ Tokens []tokenOut }
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Tokens) != 2 {
		t.Fatalf("list %s: %v", out, err)
	}

	if code, out, _ = runCLI(t, "token", "revoke", issued.ID); code != exitOK || !strings.Contains(out, "revoked") {
		t.Errorf("revoke: exit %d: %s", code, out)
	}
	code, out, _ = runCLI(t, "token", "list")
	if code != exitOK || !strings.Contains(out, issued.ID) || !strings.Contains(out, "revoked") || !strings.Contains(out, "OWNER") {
		t.Errorf("list after revoke: %s", out)
	}
}

func TestTokenUsageErrors(t *testing.T) {
	store := "sqlite://" + filepath.Join(t.TempDir(), "demur.db")
	t.Setenv(storeEnv, "")
	cases := [][]string{
		{"token", "issue", "--store", store, "--owner", "alice", "--role", "root"},
		{"token", "issue", "--store", store, "--owner", "a l i c e", "--role", "admin"},
		{"token", "issue", "--store", store, "--owner", "alice", "--role", "admin", "--ttl", "-1h"},
		{"token", "issue", "--store", store, "--role", "admin"},
		{"token", "issue", "--owner", "alice", "--role", "admin"},
		{"token", "list", "--store", "mysql://x"},
		{"token", "revoke", "--store", store, "0123456789ab"},
		{"token", "revoke", "--store", store},
	}
	for _, args := range cases {
		if code, _, errs := runCLI(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, exitUsage, errs)
		}
	}
}
