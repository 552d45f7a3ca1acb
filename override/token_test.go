package override

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/sqlite"
)

func newTokens(t *testing.T, now func() time.Time) *Tokens {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "demur.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return NewTokens(st, now)
}

func TestTokenIssueAuthenticate(t *testing.T) {
	ctx := context.Background()
	ts := newTokens(t, nil)
	secret, tok, err := ts.Issue(ctx, "test", " Alice ", demur.RoleOperator, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, SecretPrefix) || len(secret) != len(SecretPrefix)+43 {
		t.Errorf("secret %q", secret)
	}
	if tok.Owner != "alice" || tok.ID != hashSecret(secret)[:idLen] || tok.Hash != hashSecret(secret) {
		t.Errorf("token %+v", tok)
	}
	got, err := ts.Authenticate(ctx, secret)
	if err != nil || got.ID != tok.ID || got.Role != demur.RoleOperator {
		t.Fatalf("authenticate: %v %+v", err, got)
	}
	// A different secret that shares the ID (a 48-bit prefix collision,
	// simulated) must fail on the full-hash comparison.
	ts.mu.Lock()
	ts.byID[tok.ID].Hash = tok.ID + strings.Repeat("0", 64-idLen)
	ts.mu.Unlock()
	if _, err := ts.Authenticate(ctx, secret); !errors.Is(err, ErrUnknownToken) {
		t.Errorf("hash mismatch with same id: %v", err)
	}
	// One flipped character of the secret is another, unknown token.
	b := []byte(secret)
	if b[len(SecretPrefix)] == 'A' {
		b[len(SecretPrefix)] = 'B'
	} else {
		b[len(SecretPrefix)] = 'A'
	}
	flipped := string(b)
	if _, err := ts.Authenticate(ctx, flipped); err == nil {
		t.Error("flipped secret authenticated")
	}
}

func TestTokenExpiryRevocation(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Now()}
	ts := newTokens(t, c.Now)
	secret, tok, err := ts.Issue(ctx, "test", "bob", demur.RoleAdmin, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Status(c.Now()) != "active" {
		t.Errorf("status %s", tok.Status(c.Now()))
	}
	c.Advance(time.Minute)
	if got, err := ts.Authenticate(ctx, secret); !errors.Is(err, ErrTokenExpired) || got.Owner != "bob" {
		t.Errorf("expired: %v %+v", err, got)
	}
	c.Advance(-time.Second)
	if _, err := ts.Revoke(ctx, "test", tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Authenticate(ctx, secret); !errors.Is(err, ErrTokenRevoked) {
		t.Errorf("revoked: %v", err)
	}
	if again, err := ts.Revoke(ctx, "test", tok.ID); err != nil || again.Revoked.IsZero() {
		t.Errorf("second revoke: %v %+v", err, again)
	}
	if _, err := ts.Revoke(ctx, "test", "000000000000"); !errors.Is(err, demur.ErrNotFound) {
		t.Errorf("revoke unknown: %v", err)
	}
	list, err := ts.List(ctx)
	if err != nil || len(list) != 1 || list[0].Status(c.Now()) != "revoked" {
		t.Errorf("list: %v %+v", err, list)
	}
}

func TestTokenInputs(t *testing.T) {
	ctx := context.Background()
	ts := newTokens(t, nil)
	for _, owner := range []string{"", "a b", "ａlice", "ali\nce", strings.Repeat("x", 65), "-x"} {
		if _, _, err := ts.Issue(ctx, "test", owner, demur.RoleViewer, time.Hour); err == nil {
			t.Errorf("owner %q accepted", owner)
		}
	}
	if _, _, err := ts.Issue(ctx, "test", "x", "root", time.Hour); err == nil {
		t.Error("role root accepted")
	}
	if _, _, err := ts.Issue(ctx, "test", "x", demur.RoleViewer, 0); err == nil {
		t.Error("zero ttl accepted")
	}
	for _, r := range []string{"viewer", "Operator", " admin "} {
		if _, err := ParseRole(r); err != nil {
			t.Errorf("ParseRole(%q): %v", r, err)
		}
	}
	for _, bad := range []string{"", "dmr_", "dmr_" + strings.Repeat("A", 42), "dmr_" + strings.Repeat("!", 43), "xyz_" + strings.Repeat("A", 43)} {
		if _, err := ts.Authenticate(ctx, bad); err == nil {
			t.Errorf("bearer %q authenticated", bad)
		}
	}
}
