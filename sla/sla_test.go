package sla

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const specYAML = `
period: 720h
objectives:
  - {name: refusals, sli: refusal_rate, max: 0.02, window: 1h}
  - {name: refusals-70b, sli: refusal_rate, max: 0.02, model: m70b}
  - {name: abandon, sli: abandonment_rate, max: 0.1}
  - {name: recovery, sli: recovery_time, within: 2m, max: 0.1}
credits:
  - {below: 0.99, percent: 10}
  - {below: 0.5, percent: 50}
`

func mustParse(t *testing.T, src string) *Spec {
	t.Helper()
	s, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParseRejects(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"objectives: [{sli: refusal_rate, max: 0.1, maxx: 2}]", "maxx"},
		{"objectives: [{sli: refusals, max: 0.1}]", "sli \"refusals\""},
		{"objectives: [{sli: refusal_rate, max: 1.5}]", "strictly between"},
		{"objectives: [{sli: recovery_time, max: 0.1}]", "within"},
		{"objectives: [{sli: refusal_rate, max: 0.1, window: soon}]", "window"},
		{"objectives: []", "no objectives"},
		{"objectives: [{sli: refusal_rate, max: 0.1}]\nalerts: {rules: [{long: 5m, short: 1h, burn: 2}]}", "short window longer"},
	} {
		if _, err := Parse([]byte(c.src)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.src, err, c.want)
		}
	}
	s := mustParse(t, specYAML)
	if len(s.Alerts.Rules) != len(DefaultRules) || s.Alerts.Retries != 3 || s.PeriodDuration() != 720*time.Hour {
		t.Fatalf("defaults: %+v", s.Alerts)
	}
}

// turns makes n refusal_rate events one second apart ending at end, bad
// ones every `every` (0: none).
func turns(end time.Time, n, every int, model string) []Event {
	out := make([]Event, n)
	for i := range out {
		out[i] = Event{Time: end.Add(-time.Duration(n-1-i) * time.Second), SLI: RefusalRate, Model: model, Bad: every > 0 && i%every == 0}
	}
	return out
}

func firing(st []Status, name string) []Firing {
	for _, s := range st {
		if s.Objective.Name == name {
			return s.Firing
		}
	}
	return nil
}

func TestBurnRateAlerts(t *testing.T) {
	s := mustParse(t, specYAML)
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

	// A storm: half the turns of the last minutes refused, 25 times the
	// budget, fires the fast page (1h/5m at 14.4) and the slower ones.
	storm := turns(now, 200, 2, "m70b")
	st := s.Evaluate(storm, now)
	f := firing(st, "refusals")
	if len(f) == 0 || f[0].Long != "1h" || f[0].LongBurn < 24 || f[0].LongBurn > 26 {
		t.Fatalf("storm: firing %+v", f)
	}
	if len(firing(st, "refusals-70b")) == 0 {
		t.Error("storm: the per-model objective does not fire")
	}
	if st[0].BudgetRemaining >= 0 {
		t.Errorf("storm: budget remaining %v, want overspent", st[0].BudgetRemaining)
	}

	// A clean run fires nothing.
	if f := firing(s.Evaluate(turns(now, 200, 0, "m70b"), now), "refusals"); len(f) != 0 {
		t.Fatalf("clean: firing %+v", f)
	}
	// 1% refused is half the budget: burn 0.5, nothing fires.
	if f := firing(s.Evaluate(turns(now, 1000, 100, "m70b"), now), "refusals"); len(f) != 0 {
		t.Fatalf("1%%: firing %+v", f)
	}
	// Another model's storm does not fire the per-model objective.
	if f := firing(s.Evaluate(turns(now, 200, 2, "gpt"), now), "refusals-70b"); len(f) != 0 {
		t.Fatalf("other model: firing %+v", f)
	}
	// The short window resets the alert: a storm that ended 20 minutes ago,
	// followed by clean turns, no longer fires the 1h/5m page although the
	// 1h burn is still high.
	ended := append(turns(now.Add(-20*time.Minute), 200, 2, "m70b"), turns(now, 300, 0, "m70b")...)
	st = s.Evaluate(ended, now)
	for _, f := range firing(st, "refusals") {
		if f.Short == "5m" {
			t.Fatalf("ended storm still pages: %+v", f)
		}
	}
	// ... while the 6h/30m page, whose short window still holds the storm,
	// does: 100 bad of 500 is ten times the budget.
	if st[0].Burn["1h"] != 10 || len(firing(st, "refusals")) == 0 || firing(st, "refusals")[0].Short != "30m" {
		t.Fatalf("1h burn %v, firing %+v", st[0].Burn["1h"], firing(st, "refusals"))
	}
}

func TestRecoveryAndAbandonment(t *testing.T) {
	s := mustParse(t, specYAML)
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	events := []Event{
		{Time: now, SLI: RecoveryTime, Recovered: true, Latency: time.Minute},
		{Time: now, SLI: RecoveryTime, Recovered: true, Latency: 3 * time.Minute}, // late
		{Time: now, SLI: RecoveryTime, Latency: time.Minute},                      // never recovered
		{Time: now, SLI: RecoveryTime, Open: true, Latency: time.Minute},          // open, not yet judged
		{Time: now, SLI: RecoveryTime, Open: true, Latency: 5 * time.Minute},      // open and overdue
	}
	for range 9 {
		events = append(events, Event{Time: now, SLI: AbandonmentRate})
	}
	events = append(events, Event{Time: now, SLI: AbandonmentRate, Bad: true})
	for _, st := range s.Evaluate(events, now) {
		switch st.Objective.Name {
		case "recovery":
			if st.Bad != 3 || st.Total != 4 {
				t.Errorf("recovery: %d bad of %d, want 3 of 4", st.Bad, st.Total)
			}
		case "abandon":
			if st.Bad != 1 || st.Total != 10 || st.BudgetRemaining != 0 {
				t.Errorf("abandon: %+v", st)
			}
		}
	}
}

func TestReportCredits(t *testing.T) {
	s := mustParse(t, specYAML)
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	to := from.Add(10 * time.Hour)
	var events []Event
	// Ten hourly windows; in three of them 10% of the turns are refused.
	for h := range 10 {
		end := from.Add(time.Duration(h)*time.Hour + 30*time.Minute)
		every := 0
		if h < 3 {
			every = 10
		}
		events = append(events, turns(end, 100, every, "m70b")...)
	}
	rp := s.Report(events, from, to)
	c := rp.Objectives[0]
	if c.Windows != 10 || c.Met != 7 || c.Compliance != 0.7 || c.Credit != 10 || rp.Credit != 10 {
		t.Fatalf("report: %+v, credit %v", c, rp.Credit)
	}
	if c.Bad != 30 || c.Total != 1000 {
		t.Fatalf("counts %d/%d", c.Bad, c.Total)
	}
	// Nothing outside the period counts.
	if rp := s.Report(events, to, to.Add(time.Hour)); rp.Objectives[0].Total != 0 || rp.Objectives[0].Compliance != 1 {
		t.Fatalf("empty period: %+v", rp.Objectives[0])
	}
}

func TestWebhookRetries(t *testing.T) {
	var calls atomic.Int32
	var got Alert
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		_ = json.NewDecoder(r.Body).Decode(&got)
	}))
	defer srv.Close()
	wh := &Webhook{URL: srv.URL, Retries: 3, Backoff: time.Millisecond}
	if err := wh.Deliver(context.Background(), Alert{State: "firing", Objective: "x"}); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 3 || got.Objective != "x" {
		t.Fatalf("%d calls, got %+v", calls.Load(), got)
	}

	// Retries run out.
	calls.Store(-10)
	if err := (&Webhook{URL: srv.URL, Retries: 2, Backoff: time.Millisecond}).Deliver(context.Background(), Alert{}); err == nil || calls.Load() != -7 {
		t.Fatalf("exhausted: %v after %d calls", err, calls.Load()+10)
	}
	// A 4xx is the receiver's answer, not a failure to retry.
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "no", http.StatusBadRequest)
	}))
	defer bad.Close()
	calls.Store(0)
	if err := (&Webhook{URL: bad.URL, Retries: 3, Backoff: time.Millisecond}).Deliver(context.Background(), Alert{}); err == nil || calls.Load() != 1 {
		t.Fatalf("4xx: %v after %d calls", err, calls.Load())
	}
}
