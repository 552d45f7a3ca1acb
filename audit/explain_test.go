package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/audit"
)

// refusalLog writes the story of section c01s02: agent-01 refuses and is
// retired, an operator's override is recorded, agent-02 writes it.
func refusalLog(t *testing.T) (*memStore, []*demur.Record) {
	t.Helper()
	ctx := context.Background()
	st := newMemStore()
	refusal := "Here is the start. Unfortunately, I can't continue this section."
	out1, _ := st.PutBlob(ctx, []byte(refusal))
	out2, _ := st.PutBlob(ctx, []byte("Pipes carry water."))
	at := strings.Index(refusal, "Unfortunately")
	add := func(kind demur.RecordKind, actor string, p any) {
		data, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Append(ctx, &demur.Record{Job: "j", Stream: "j", Kind: kind, Actor: actor, Payload: data}); err != nil {
			t.Fatal(err)
		}
	}
	add(demur.RecJobStart, "coordinator", demur.JobStartPayload{Sections: 1})
	add(demur.RecAssign, "coordinator", demur.AssignPayload{Task: "c01s02", Agent: "agent-01", Attempt: 1})
	add(demur.RecTurn, "agent-01", demur.TurnPayload{Task: "c01s02", Agent: "agent-01", Attempt: 1, Output: out1, Words: 11})
	add(demur.RecVerdict, "detector", demur.VerdictPayload{Task: "c01s02", Agent: "agent-01", Attempt: 1, Verdict: demur.Verdict{
		Kind: demur.KindRefuse, Reasons: []demur.Reason{demur.ReasonCapability}, Confidence: 0.91, Source: demur.SourceText,
		Evidence: []demur.Evidence{{Start: at, End: at + len("Unfortunately"), Rule: "apology:unfortunately"}}}})
	add(demur.RecDecision, "router", demur.DecisionPayload{Task: "c01s02", Agent: "agent-01", Attempt: 1, Decision: demur.Decision{
		Action: demur.ActionReassign, Rule: "retire_after", Retire: true, Path: []demur.Step{
			{Rule: "comply", Matched: false, Why: "verdict is refuse"},
			{Rule: "retire_after", Matched: true, Why: "agent has 2 refusal(s), retire after 2"}}}})
	add(demur.RecAgent, "router", demur.AgentPayload{Agent: "agent-01", State: "retired", Reason: "2 refusal(s); last: refuse"})
	add(demur.RecOverride, "alice", map[string]any{"override": map[string]string{"task": "c01s02", "action": "force"}, "outcome": "applied"})
	add(demur.RecAssign, "coordinator", demur.AssignPayload{Task: "c01s02", Agent: "agent-02", Attempt: 2, Refresh: true})
	add(demur.RecTurn, "agent-02", demur.TurnPayload{Task: "c01s02", Agent: "agent-02", Attempt: 2, Output: out2, Words: 3})
	add(demur.RecVerdict, "detector", demur.VerdictPayload{Task: "c01s02", Agent: "agent-02", Attempt: 2, Verdict: demur.Verdict{Kind: demur.KindComply, Confidence: 0.97}})
	add(demur.RecDecision, "router", demur.DecisionPayload{Task: "c01s02", Agent: "agent-02", Attempt: 2, Decision: demur.Decision{Action: demur.ActionAccept, Rule: "comply"}})
	add(demur.RecSection, "coordinator", demur.SectionPayload{Task: "c01s02", Agent: "agent-02", Attempt: 2, Output: out2, Words: 3})
	add(demur.RecJobEnd, "coordinator", demur.JobEndPayload{Status: "completed", Done: 1, Total: 1})
	return st, mustRecords(t, st, demur.Query{Stream: "j"})
}

func TestExplainStory(t *testing.T) {
	st, recs := refusalLog(t)
	story, err := audit.BuildStory(recs, blobFunc(st), "c01s02")
	if err != nil {
		t.Fatal(err)
	}
	if len(story.Attempts) != 2 || story.Outcome != audit.OutcomeAccepted || len(story.Overrides) != 1 {
		t.Fatalf("story: %d attempts, outcome %s, %d overrides", len(story.Attempts), story.Outcome, len(story.Overrides))
	}
	a := story.Attempts[0]
	if a.Retired == nil || a.RetiredSeq != 6 || a.VerdictSeq != 4 || a.DecisionSeq != 5 || a.Output == "" {
		t.Fatalf("attempt 1: %+v", a)
	}
	var buf bytes.Buffer
	story.Render(&buf, audit.PlainStyle)
	text := buf.String()
	for _, want := range []string{
		"section c01s02 — accepted (#12): attempt 2 by agent-02",
		"verdict: REFUSE (capability), confidence 0.91",
		"start. »Unfortunately«, I can't",
		"✗ comply        verdict is refuse",
		"✓ retire_after  agent has 2 refusal(s)",
		"action: the section is handed to another agent in a fresh context; the agent is retired",
		"#6      agent-01 retired: 2 refusal(s); last: refuse",
		"#7      by alice:",
		"assigned to agent-02 (fresh context)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("story lacks %q:\n%s", want, text)
		}
	}
	buf.Reset()
	story.Render(&buf, audit.ANSIStyle)
	if !strings.Contains(buf.String(), "\x1b[1;31mUnfortunately\x1b[0m") {
		t.Error("ANSI style does not mark the evidence")
	}
	if err := story.Only("c01s02", 2); err != nil || len(story.Attempts) != 1 || story.Attempts[0].Agent != "agent-02" {
		t.Fatalf("Only(2): %v, %+v", err, story.Attempts)
	}
	if _, err := audit.BuildStory(recs, nil, "c09s09"); !errors.Is(err, audit.ErrNoSuchTask) {
		t.Fatalf("unknown task: %v", err)
	}
}

func TestRefusals(t *testing.T) {
	_, recs := refusalLog(t)
	rs := audit.Refusals(recs)
	if len(rs) != 1 {
		t.Fatalf("%d refusals, want 1", len(rs))
	}
	r := rs[0]
	if r.Seq != 4 || r.Task != "c01s02" || r.Kind != demur.KindRefuse || r.Action != demur.ActionReassign || !r.Retire || r.Rule != "retire_after" {
		t.Fatalf("refusal: %+v", r)
	}
}
