package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/demurhq/demur/feed"
	"github.com/demurhq/demur/override"
	"github.com/demurhq/demur/sqlite"
)

func TestHandlerMountsOverrides(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "demur.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc, err := override.New(context.Background(), override.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		opts   Options
		method string
		path   string
		want   int
	}{
		{Options{Overrides: svc}, "GET", "/healthz", http.StatusOK},
		{Options{Overrides: svc}, "GET", "/api/overrides", http.StatusUnauthorized},
		{Options{Overrides: svc}, "POST", "/api/overrides/ovr_0123456789abcdef/approve", http.StatusUnauthorized},
		{Options{Overrides: svc}, "DELETE", "/api/overrides", http.StatusMethodNotAllowed},
		{Options{Overrides: svc}, "GET", "/nope", http.StatusNotFound},
		{Options{}, "GET", "/api/overrides", http.StatusNotFound},
	}
	for _, c := range cases {
		rec := httptest.NewRecorder()
		Handler(c.opts).ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		if rec.Code != c.want {
			t.Errorf("%s %s (overrides %v): %d, want %d", c.method, c.path, c.opts.Overrides != nil, rec.Code, c.want)
		}
	}
}

func TestNewServerTimeouts(t *testing.T) {
	s := NewServer(Options{Addr: "127.0.0.1:0"})
	if s.ReadHeaderTimeout == 0 || s.ReadTimeout == 0 || s.WriteTimeout == 0 || s.IdleTimeout == 0 || s.MaxHeaderBytes == 0 {
		t.Errorf("server without limits: %+v", s)
	}
}

func TestHandlerServesDashboard(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "demur.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f, err := feed.New(feed.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	h := Handler(Options{Feed: f})
	for path, want := range map[string]string{"/": "<canvas id=\"grid\"", "/assets/app.js": "EventSource", "/assets/app.css": "--refused", "/api/jobs": "[]"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("%s: %d, body lacks %q", path, rec.Code, want)
		}
		if path != "/api/jobs" && !strings.Contains(rec.Header().Get("Content-Security-Policy"), "default-src 'self'") {
			t.Errorf("%s: no CSP", path)
		}
	}
	// Without a feed there is no dashboard.
	rec := httptest.NewRecorder()
	Handler(Options{}).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("no feed: / is %d", rec.Code)
	}
}
