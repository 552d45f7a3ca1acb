package feed

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/sqlite"
)

func appendRec(t *testing.T, st demur.Store, job string, kind demur.RecordKind, p any) {
	t.Helper()
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Append(context.Background(), &demur.Record{Job: job, Stream: job, Kind: kind, Actor: "coordinator", Payload: data}); err != nil {
		t.Fatal(err)
	}
}

func refuseTurn(t *testing.T, st demur.Store, job, agent, task string) {
	appendRec(t, st, job, demur.RecAssign, demur.AssignPayload{Task: task, Agent: agent, Attempt: 1})
	appendRec(t, st, job, demur.RecTurn, demur.TurnPayload{Task: task, Agent: agent, Attempt: 1, Words: 5, Usage: demur.Usage{CompletionTokens: 7}})
	appendRec(t, st, job, demur.RecVerdict, demur.VerdictPayload{Task: task, Agent: agent, Attempt: 1, Verdict: demur.Verdict{
		Kind: demur.KindRefuse, Reasons: []demur.Reason{demur.ReasonAutonomy}, Source: demur.SourceText,
		Signals: demur.Signals{Hazard: 0.8, CumTokens: 7}}})
	appendRec(t, st, job, demur.RecDecision, demur.DecisionPayload{Task: task, Agent: agent, Attempt: 1,
		Decision: demur.Decision{Action: demur.ActionReassign, Rule: "r", Retire: true}})
}

func TestFeedFoldsLogAndStreams(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "demur.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const job = "j1"
	appendRec(t, st, job, demur.RecJobStart, demur.JobStartPayload{TaskType: "document", Sections: 2,
		Agents: []demur.AgentEntry{{ID: "a1", Model: "m1"}, {ID: "a2", Model: "m2"}}})
	f, err := New(Options{Store: st, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	events := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				events <- d
			}
		}
		close(events)
	}()
	if hello := <-events; hello != "{}" {
		t.Fatalf("hello %q", hello)
	}

	refuseTurn(t, st, job, "a1", "s01")
	appendRec(t, st, job, demur.RecOverride, struct {
		Override demur.Override `json:"override"`
		Outcome  string         `json:"outcome"`
	}{demur.Override{ID: "ovr_1", Job: job, Action: demur.ActionPause, Agent: "a2"}, demur.OverrideApplied})
	if err := f.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	var u Update
	select {
	case d := <-events:
		if err := json.Unmarshal([]byte(d), &u); err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no update event")
	}
	if len(u.Refusals) != 1 || u.Refusals[0].Agent != "a1" || u.Refusals[0].Action != demur.ActionReassign || u.Refusals[0].Model != "m1" {
		t.Fatalf("refusals %+v", u.Refusals)
	}
	states := map[string]string{}
	for _, a := range u.Agents {
		states[a.ID] = a.State
	}
	if states["a1"] != StateRetired || states["a2"] != StatePaused {
		t.Fatalf("states %v", states)
	}

	snap, ok := f.Job(job)
	if !ok {
		t.Fatal("no snapshot")
	}
	a1 := snap.Agents[0]
	if a1.Words != 5 || a1.Tokens != 7 || a1.Hazard != 0.8 || a1.Refusals != 1 || snap.Job.Refusals != 1 || snap.Job.Overrides != 1 {
		t.Fatalf("snapshot %+v %+v", snap.Job, a1)
	}
	if s, _ := f.Series(job, "a1"); len(s) != 1 || !s[0].Refusal || s[0].Tokens != 7 {
		t.Fatalf("series %+v", s)
	}

	// The trace comes from the audit package's story of the task.
	tr, err := http.Get(srv.URL + "/api/jobs/" + job + "/trace?task=s01")
	if err != nil {
		t.Fatal(err)
	}
	var story struct {
		Task     string `json:"task"`
		Attempts []struct {
			Decision *demur.Decision `json:"decision"`
		} `json:"attempts"`
	}
	err = json.NewDecoder(tr.Body).Decode(&story)
	tr.Body.Close()
	if err != nil || tr.StatusCode != 200 || len(story.Attempts) != 1 || story.Attempts[0].Decision.Action != demur.ActionReassign {
		t.Fatalf("trace %d %+v %v", tr.StatusCode, story, err)
	}
	for path, want := range map[string]int{"/api/jobs/nope": 404, "/api/jobs/j1/trace?task=zz": 404, "/api/jobs/j1/trace": 400, "/api/jobs": 200} {
		r, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, r.StatusCode, want)
		}
	}

	// An ended job is folded once more and then no longer polled.
	appendRec(t, st, job, demur.RecJobEnd, demur.JobEndPayload{Status: "incomplete", Done: 0, Total: 2})
	if err := f.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if js := f.Jobs(); len(js) != 1 || js[0].Status != "incomplete" {
		t.Fatalf("jobs %+v", js)
	}

	// Close ends the stream, so that a server's Shutdown need not wait for
	// an open page.
	f.Close()
	select {
	case _, ok := <-events:
		for ok {
			_, ok = <-events
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the event stream outlived Close")
	}
}
