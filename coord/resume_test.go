package coord

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/policy"
)

// TestReplayDropsAbandonedAttempt: an attempt the log handed out but never
// answered (its coordinator died) is abandoned at replay; its late result,
// still on an external bus, must not be recorded or written.
func TestReplayDropsAbandonedAttempt(t *testing.T) {
	spec := testSpec(t, 1, 2)
	h := newHarness(t, t.TempDir(), spec, nil)
	defer h.close()
	ctx := context.Background()
	job := spec.JobID()
	as, _ := json.Marshal(demur.AssignPayload{Task: "c01s01", Agent: "agent-01", Attempt: 7})
	if err := h.store.Append(ctx, &demur.Record{Job: job, Stream: job, Kind: demur.RecAssign, Actor: "coordinator", Payload: as}); err != nil {
		t.Fatal(err)
	}
	stale, _ := json.Marshal(Result{Task: demur.Task{Job: job, ID: "c01s01", Attempt: 7}, Agent: "agent-01",
		Turn: demur.Turn{Job: job, Task: "c01s01", Agent: "agent-01", Attempt: 7,
			Response: demur.Response{Output: "a stale answer", FinishReason: "stop"}}})
	if err := h.bus.Publish(ctx, ResultSubject(job), stale); err != nil {
		t.Fatal(err)
	}
	end, err := h.run(ctx, t, policy.Default())
	if err != nil || end.Status != StatusCompleted {
		t.Fatalf("run: %+v, %v", end, err)
	}
	recs, err := h.store.Records(ctx, demur.Query{Job: job, Stream: job, Kinds: []demur.RecordKind{demur.RecTurn, demur.RecSection}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		var p struct {
			Task    string `json:"task"`
			Attempt int    `json:"attempt"`
		}
		_ = json.Unmarshal(r.Payload, &p)
		if p.Task == "c01s01" && p.Attempt == 7 {
			t.Fatalf("the abandoned attempt's late result was taken: %s %s", r.Kind, r.Payload)
		}
	}
}

// TestReplayRejectsSecondCompletion: a log with two section.done records
// for one task (two writers raced) stops the job instead of resuming it.
func TestReplayRejectsSecondCompletion(t *testing.T) {
	spec := testSpec(t, 1, 2)
	h := newHarness(t, t.TempDir(), spec, nil)
	defer h.close()
	ctx := context.Background()
	job := spec.JobID()
	for attempt := 1; attempt <= 2; attempt++ {
		sd, _ := json.Marshal(demur.SectionPayload{Task: "c01s01", Agent: "agent-01", Attempt: attempt})
		if err := h.store.Append(ctx, &demur.Record{Job: job, Stream: job, Kind: demur.RecSection, Actor: "coordinator", Payload: sd}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.run(ctx, t, policy.Default()); !errors.Is(err, ErrDuplicateSection) {
		t.Fatalf("run on a log with a second completion: %v, want ErrDuplicateSection", err)
	}
}
