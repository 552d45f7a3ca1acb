package feed

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/audit"
)

// heartbeat keeps idle SSE connections (and the proxies in between) open.
const heartbeat = 15 * time.Second

// Handler returns the read-only dashboard API:
//
//	GET /api/events                          SSE: "update" events (Update JSON)
//	GET /api/jobs                            every job's summary
//	GET /api/jobs/{id}                       a job's snapshot: agents, refusals
//	GET /api/jobs/{id}/agents/{agent}/series an agent's signal points
//	GET /api/jobs/{id}/trace?task=T          a task's decision trace (audit.Story)
//
// Like the rest of `demur serve`, it is meant for loopback or behind a
// TLS-terminating proxy that authenticates; overrides, the only writes, keep
// their own bearer-token checks.
func (f *Feed) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/events", f.handleEvents)
	mux.HandleFunc("GET /api/jobs", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, f.Jobs()) })
	mux.HandleFunc("GET /api/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		s, ok := f.Job(r.PathValue("id"))
		if !ok {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such job"})
			return
		}
		writeJSON(w, http.StatusOK, s)
	})
	mux.HandleFunc("GET /api/jobs/{id}/agents/{agent}/series", func(w http.ResponseWriter, r *http.Request) {
		s, ok := f.Series(r.PathValue("id"), r.PathValue("agent"))
		if !ok {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such agent"})
			return
		}
		writeJSON(w, http.StatusOK, s)
	})
	mux.HandleFunc("GET /api/jobs/{id}/trace", f.handleTrace)
	return mux
}

func (f *Feed) handleTrace(w http.ResponseWriter, r *http.Request) {
	job, task := r.PathValue("id"), r.URL.Query().Get("task")
	if task == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "task is required"})
		return
	}
	ctx := r.Context()
	recs, err := f.opts.Store.Records(ctx, demur.Query{Stream: job})
	if err != nil {
		f.opts.Logger.Warn("feed: trace", "job", job, "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "cannot read the log"})
		return
	}
	story, err := audit.BuildStory(recs, func(h string) ([]byte, error) { return f.opts.Store.Blob(ctx, h) }, task)
	if errors.Is(err, audit.ErrNoSuchTask) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		return
	}
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": fmt.Sprintf("trace: %v", err)})
		return
	}
	story.Job = job
	writeJSON(w, http.StatusOK, story)
}

// handleEvents streams updates. The first event, "hello", tells the page
// to fetch snapshots; after that only changes flow, so a page with a
// thousand agents receives the agents that changed, batched per poll.
func (f *Feed) handleEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	ch, cancel := f.Subscribe()
	defer cancel()
	if _, err := fmt.Fprint(w, "retry: 2000\nevent: hello\ndata: {}\n\n"); err != nil {
		return
	}
	_ = rc.Flush()
	hb := time.NewTicker(heartbeat)
	defer hb.Stop()
	for {
		// The server's WriteTimeout would cut a long-lived stream; each
		// write pushes the deadline out instead.
		_ = rc.SetWriteDeadline(time.Now().Add(heartbeat + 10*time.Second))
		select {
		case <-r.Context().Done():
			return
		case <-f.closing:
			return
		case <-hb.C:
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil {
				return
			}
		case u := <-ch:
			data, err := json.Marshal(u)
			if err != nil {
				return
			}
			if _, err := fmt.Fprintf(w, "event: update\ndata: %s\n\n", data); err != nil {
				return
			}
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
