package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/feed"
	"github.com/demurhq/demur/sqlite"
	"github.com/demurhq/demur/web"
)

// TestDashboardThousandAgents loads the page on a job of 1,000 agents,
// then has every agent take a turn (a refusal for one in ten) and checks
// that the page takes them all in with short paints: the grid is one
// canvas, and a burst of updates costs one paint per animation frame.
func TestDashboardThousandAgents(t *testing.T) {
	bin := chromiumBin()
	if bin == "" {
		t.Skip("chromium not installed (apt-get install -y chromium); skipping the dashboard scale test")
	}
	if testing.Short() {
		t.Skip("short mode")
	}
	const n = 1000
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "demur.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const job = "scale-1"
	rec := func(kind demur.RecordKind, p any) *demur.Record {
		data, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		return &demur.Record{Job: job, Stream: job, Kind: kind, Actor: "coordinator", Payload: data}
	}
	start := demur.JobStartPayload{TaskType: "long_form_document", Sections: n}
	for i := range n {
		start.Agents = append(start.Agents, demur.AgentEntry{ID: fmt.Sprintf("agent-%04d", i+1), Model: "experimental-70b"})
	}
	if err := st.Append(ctx, rec(demur.RecJobStart, start)); err != nil {
		t.Fatal(err)
	}
	round := func(r int) {
		var recs []*demur.Record
		for i, a := range start.Agents {
			task := fmt.Sprintf("s%04d", i)
			kind := demur.KindComply
			if (i+r)%10 == 0 {
				kind = demur.KindRefuse
			}
			recs = append(recs,
				rec(demur.RecAssign, demur.AssignPayload{Task: task, Agent: a.ID, Attempt: r}),
				rec(demur.RecTurn, demur.TurnPayload{Task: task, Agent: a.ID, Attempt: r, Words: 300, Usage: demur.Usage{CompletionTokens: 400}}),
				rec(demur.RecVerdict, demur.VerdictPayload{Task: task, Agent: a.ID, Attempt: r, Verdict: demur.Verdict{Kind: kind,
					Source: demur.SourceText, Signals: demur.Signals{Hazard: float64(i%100) / 100, CumTokens: int64(400 * r)}}}),
				rec(demur.RecDecision, demur.DecisionPayload{Task: task, Agent: a.ID, Attempt: r, Decision: demur.Decision{Action: demur.ActionAccept}}))
		}
		if err := st.Append(ctx, recs...); err != nil {
			t.Fatal(err)
		}
	}
	round(1)

	f, err := feed.New(feed.Options{Store: st, Poll: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go f.Run(fctx)
	<-f.Ready()
	srv := httptest.NewServer(web.Handler(web.Options{Feed: f}))
	// Cleanups run last in, first out: the browser (registered next) goes
	// first, closing its event stream, then the server.
	t.Cleanup(srv.Close)

	bctx := newBrowser(t, bin)
	loadStart := time.Now()
	if err := chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	type stats struct {
		DrawMs    float64 `json:"drawMs"`
		MaxDrawMs float64 `json:"maxDrawMs"`
		Updates   int     `json:"updates"`
		Agents    int     `json:"agents"`
		Rows      int     `json:"rows"`
		Refusals  string  `json:"refusals"`
	}
	read := func() stats {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Evaluate[stats](`({...window.demurStats, rows: document.querySelectorAll("#refusals li").length, refusals: document.getElementById("refusal-count").textContent})`))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	waitFor := func(what string, ok func(stats) bool) stats {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			s := read()
			if ok(s) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: never; last %+v", what, s)
			}
		}
	}
	s := waitFor("1,000 agents shown", func(s stats) bool { return s.Agents == n && s.Refusals == "100" })
	loaded := time.Since(loadStart)

	// Every agent changes at once: 4,000 records in one poll.
	updStart := time.Now()
	round(2)
	s = waitFor("the second round shown", func(s stats) bool { return s.Refusals == "200" })
	took := time.Since(updStart)
	t.Logf("1,000 agents: page ready in %v; a round of 4,000 records shown in %v (poll 100ms); grid paint %.1fms, worst %.1fms; %d SSE updates; %d timeline rows",
		loaded.Round(time.Millisecond), took.Round(time.Millisecond), s.DrawMs, s.MaxDrawMs, s.Updates, s.Rows)
	if s.MaxDrawMs > 100 {
		t.Errorf("a grid paint took %.1fms; the page would stutter", s.MaxDrawMs)
	}
	if s.Rows > 300 {
		t.Errorf("%d timeline rows in the DOM; the list should stay bounded", s.Rows)
	}
}
