// Package web is demur's HTTP front: one mux that mounts the parts of the
// API (today the override API; the dashboard and /metrics come later) and an
// http.Server with timeouts fit for the open network.
package web

import (
	"net/http"
	"time"

	"github.com/demurhq/demur/override"
)

// Options say what the server serves.
type Options struct {
	// Addr is the listen address, e.g. "127.0.0.1:8080".
	Addr string
	// Overrides, if set, serves the override API under /api/overrides.
	Overrides *override.Service
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
	return mux
}

// NewServer returns a server for opts. The timeouts bound how long a slow
// or silent client can hold a connection (slowloris); bodies are small.
func NewServer(opts Options) *http.Server {
	return &http.Server{
		Addr:              opts.Addr,
		Handler:           Handler(opts),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
}
