// Package storeurl opens an audit-log store named by a URL, so that commands
// and configuration can pick a backend with one string:
//
//	sqlite://out/demur.db            relative path out/demur.db
//	sqlite:///var/lib/demur/log.db   absolute path /var/lib/demur/log.db
//	postgres://user@host:5432/db     PostgreSQL (postgresql:// too)
//
// It imports every store adapter; the core demur package stays free of them.
package storeurl

import (
	"context"
	"fmt"
	"strings"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/postgres"
	"github.com/demurhq/demur/sqlite"
)

// Schemes lists the URL schemes Open accepts.
var Schemes = []string{"sqlite", "postgres", "postgresql"}

// Open opens the store named by url. A sqlite URL's path is taken verbatim
// after "sqlite://", which is what makes sqlite://rel/path relative and
// sqlite:///abs/path absolute; a postgres URL is handed to the driver whole.
func Open(ctx context.Context, url string) (demur.Store, error) {
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok {
		return nil, fmt.Errorf("open store %q: not a URL; want one of %s", url, schemeList())
	}
	switch strings.ToLower(scheme) {
	case "sqlite", "sqlite3":
		if rest == "" {
			return nil, fmt.Errorf("open store %q: sqlite URL has no path", url)
		}
		s, err := sqlite.Open(ctx, rest)
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		return s, nil
	case "postgres", "postgresql":
		s, err := postgres.Open(ctx, url)
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		return s, nil
	default:
		return nil, fmt.Errorf("open store %q: unknown scheme %q; want one of %s", url, scheme, schemeList())
	}
}

func schemeList() string {
	return strings.Join(Schemes, "://, ") + "://"
}
