package metrics

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/feed"
	"github.com/demurhq/demur/sla"
	"github.com/demurhq/demur/sqlite"
)

func TestCollector(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "demur.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	add := func(kind demur.RecordKind, p any) {
		data, _ := json.Marshal(p)
		if err := st.Append(ctx, &demur.Record{Job: "j", Stream: "j", Kind: kind, Actor: "c", Payload: data}); err != nil {
			t.Fatal(err)
		}
	}
	add(demur.RecJobStart, demur.JobStartPayload{TaskType: "doc", Agents: []demur.AgentEntry{{ID: "a", Model: "m"}}})
	for i, h := range []float64{0.01, 0.25, 0.95} {
		add(demur.RecTurn, demur.TurnPayload{Task: "s", Agent: "a", Attempt: i + 1})
		kind := demur.KindComply
		if i == 2 {
			kind = demur.KindRefuse
		}
		add(demur.RecVerdict, demur.VerdictPayload{Task: "s", Agent: "a", Attempt: i + 1, Verdict: demur.Verdict{Kind: kind, Signals: demur.Signals{Hazard: h}}})
	}
	add(demur.RecOverride, map[string]any{"override": demur.Override{ID: "o", Action: demur.ActionPause, Agent: "a"}, "outcome": demur.OverrideApplied})
	f, err := feed.New(feed.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP demur_overrides_applied_total Overrides the coordinator carried out, by action.
# TYPE demur_overrides_applied_total counter
demur_overrides_applied_total{action="pause",task_type="doc"} 1
# HELP demur_refusals_total Refuse and partial verdicts, by kind, first reason and agent model.
# TYPE demur_refusals_total counter
demur_refusals_total{kind="refuse",model="m",reason="unknown",task_type="doc"} 1
# HELP demur_agents Agents of running jobs, by state.
# TYPE demur_agents gauge
demur_agents{state="paused"} 1
`
	if err := testutil.CollectAndCompare(NewCollector(f), strings.NewReader(want), "demur_overrides_applied_total", "demur_refusals_total", "demur_agents"); err != nil {
		t.Error(err)
	}
	h, err := Handler(f, NewSLACollector(func() []sla.Status {
		return []sla.Status{{Objective: sla.Objective{Name: "o", SLI: sla.RefusalRate}, BudgetRemaining: -2, Burn: map[string]float64{"1h": 30},
			Firing: []sla.Firing{{Severity: "page"}}}}
	}))
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, w := range []string{
		`demur_hazard_bucket{model="m",task_type="doc",le="0.05"} 1`,
		`demur_hazard_bucket{model="m",task_type="doc",le="0.3"} 2`,
		`demur_hazard_count{model="m",task_type="doc"} 3`,
		`demur_sla_burn_rate{objective="o",sli="refusal_rate",window="1h"} 30`,
		`demur_sla_error_budget_remaining{objective="o",sli="refusal_rate"} -2`,
		`demur_sla_alerts_firing{objective="o",severity="page"} 1`,
	} {
		if !strings.Contains(body, w) {
			t.Errorf("/metrics lacks %s", w)
		}
	}
	if strings.Contains(body, "go_goroutines") {
		t.Error("/metrics carries the Go runtime's metrics; only demur_ ones belong")
	}
}
