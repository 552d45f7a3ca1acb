package web

import (
	"embed"
	"io/fs"
	"net/http"
)

// dashboardFS holds the dashboard: plain HTML, CSS and JS, embedded so
// that the binary serves it with no CDN and no build step.
//
//go:embed dashboard
var dashboardFS embed.FS

// dashboardHandler serves the page at / and its assets under /assets/.
func dashboardHandler() (page, assets http.Handler) {
	sub, err := fs.Sub(dashboardFS, "dashboard")
	if err != nil {
		panic(err) // the embed directive guarantees the directory
	}
	files := http.FileServerFS(sub)
	page = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setPageHeaders(w)
		http.ServeFileFS(w, r, sub, "index.html")
	})
	assets = http.StripPrefix("/assets/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setPageHeaders(w)
		files.ServeHTTP(w, r)
	}))
	return page, assets
}

// setPageHeaders forbids every origin but our own: the page renders model
// output, and a strict policy makes a slip in escaping inert.
func setPageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
}
