// Package web is demur's HTTP front: one mux that mounts the parts of the
// API (the override API, the dashboard and its live feed) and an
// http.Server with timeouts fit for the open network.
package web

import (
	"net/http"
	"time"

	"github.com/demurhq/demur/feed"
	"github.com/demurhq/demur/override"
)

// Options say what the server serves.
type Options struct {
	// Addr is the listen address, e.g. "127.0.0.1:8080".
	Addr string
	// Overrides, if set, serves the override API under /api/overrides.
	Overrides *override.Service
	// Feed, if set, serves the dashboard at / and its read-only API
	// (/api/events, /api/jobs...). The caller runs it (Feed.Run).
	Feed *feed.Feed
	// Extra mounts more handlers by pattern, e.g. "GET /metrics".
	Extra map[string]http.Handler
}

// Handler returns the mux for opts. New parts mount their own prefix here.
func Handler(opts Options) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	if opts.Overrides != nil {
		h := opts.Overrides.Handler()
		mux.Handle("/api/overrides", h)
		mux.Handle("/api/overrides/", h)
	}
	if opts.Feed != nil {
		h := opts.Feed.Handler()
		mux.Handle("GET /api/events", h)
		mux.Handle("GET /api/jobs", h)
		mux.Handle("GET /api/jobs/", h)
		page, assets := dashboardHandler()
		mux.Handle("GET /{$}", page)
		mux.Handle("GET /assets/", assets)
	}
	for pattern, h := range opts.Extra {
		mux.Handle(pattern, h)
	}
	return mux
}

// NewServer returns a server for opts. The timeouts bound how long a slow
// or silent client can hold a connection (slowloris); bodies are small.
func NewServer(opts Options) *http.Server {
	srv := &http.Server{
		Addr:              opts.Addr,
		Handler:           Handler(opts),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	if opts.Feed != nil {
		// Shutdown waits for the dashboard's event streams, which never
		// end by themselves.
		srv.RegisterOnShutdown(opts.Feed.Close)
	}
	return srv
}
