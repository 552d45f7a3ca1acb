package storeurl_test

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/postgres"
	"github.com/demurhq/demur/sqlite"
	"github.com/demurhq/demur/storeurl"
	"github.com/jackc/pgx/v5"
)

func TestSQLitePaths(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	t.Chdir(dir)
	abs := filepath.Join(dir, "abs", "log.db")
	cases := []struct{ url, file string }{
		{"sqlite://out/demur.db", filepath.Join(dir, "out", "demur.db")},
		{"sqlite://" + abs, abs}, // sqlite:///tmp/.../abs/log.db
		{"SQLITE://up.db", filepath.Join(dir, "up.db")},
	}
	for _, c := range cases {
		s, err := storeurl.Open(ctx, c.url)
		if err != nil {
			t.Fatalf("Open(%q): %v", c.url, err)
		}
		if _, ok := s.(*sqlite.Store); !ok {
			t.Errorf("Open(%q) = %T, want *sqlite.Store", c.url, s)
		}
		if err := s.Append(ctx, &demur.Record{Stream: "s"}); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(c.file); err != nil {
			t.Errorf("Open(%q) did not create %s: %v", c.url, c.file, err)
		}
	}
}

func TestBadURLs(t *testing.T) {
	for _, u := range []string{"", "demur.db", "mysql://x/y", "sqlite://", "file:///x.db"} {
		s, err := storeurl.Open(context.Background(), u)
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", u)
			continue
		}
		if !strings.Contains(err.Error(), "sqlite://") && !strings.Contains(err.Error(), "no path") {
			t.Errorf("Open(%q) error %q does not say what is accepted", u, err)
		}
	}
}

func TestPostgres(t *testing.T) {
	base := os.Getenv("DEMUR_TEST_POSTGRES_URL")
	if base == "" {
		t.Skip("set DEMUR_TEST_POSTGRES_URL to run, e.g. DEMUR_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	}
	ctx := context.Background()
	schema := "demur_test_storeurl_" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "_"))
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE; CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	defer admin.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	for _, scheme := range []string{"postgres", "postgresql"} {
		u.Scheme = scheme
		u.RawQuery = q.Encode()
		s, err := storeurl.Open(ctx, u.String())
		if err != nil {
			t.Fatalf("Open(%s://…): %v", scheme, err)
		}
		if _, ok := s.(*postgres.Store); !ok {
			t.Errorf("Open(%s://…) = %T, want *postgres.Store", scheme, s)
		}
		r := &demur.Record{Stream: "s"}
		if err := s.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
}
