package sla

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/demurhq/demur"
)

// Event is one event of an indicator, as found in the log.
type Event struct {
	Time     time.Time `json:"time"`
	SLI      string    `json:"sli"`
	Bad      bool      `json:"bad"`
	Job      string    `json:"job"`
	TaskType string    `json:"task_type"`
	// Model is the agent's model; empty for abandonment, which is a
	// property of the job, not of one agent.
	Model string `json:"model,omitempty"`
	Task  string `json:"task,omitempty"`
	// Recovered and Latency are recovery_time's: whether the refused item
	// was written, and how long after its first refusal (or, when not,
	// how long it has been open). Each objective judges them against its
	// own bound, so Bad is not set for these events.
	Recovered bool          `json:"recovered,omitempty"`
	Latency   time.Duration `json:"latency_ns,omitempty"`
	// Open marks an item still open when the events were read: it counts
	// only against objectives whose bound it already exceeds.
	Open bool `json:"open,omitempty"`
}

// Events reads every job in store and returns their events as of now.
func Events(ctx context.Context, store demur.Store, now time.Time) ([]Event, error) {
	starts, err := store.Records(ctx, demur.Query{Kinds: []demur.RecordKind{demur.RecJobStart}})
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	var out []Event
	for _, s := range starts {
		recs, err := store.Records(ctx, demur.Query{Stream: s.Job})
		if err != nil {
			return nil, fmt.Errorf("read job %s: %w", s.Job, err)
		}
		out = append(out, JobEvents(recs, now)...)
	}
	return out, nil
}

type refused struct {
	at    time.Time
	model string
}

// JobEvents derives the events of one job's stream (in seq order) as of
// now. A refused work item is recovered when it is written (a split item
// when its last part is); one the job ended without is never recovered.
func JobEvents(recs []*demur.Record, now time.Time) []Event {
	var out []Event
	var job, taskType string
	models := map[string]string{}
	open := map[string]refused{} // task → its first refusal, until written
	recover := func(task string, at time.Time) {
		for id, r := range open {
			if id == task || strings.HasPrefix(task, id+".p") {
				out = append(out, Event{Time: at, SLI: RecoveryTime, Job: job, TaskType: taskType, Model: r.model, Task: id,
					Recovered: true, Latency: at.Sub(r.at)})
				delete(open, id)
			}
		}
	}
	for _, r := range recs {
		switch r.Kind {
		case demur.RecJobStart:
			var p demur.JobStartPayload
			if json.Unmarshal(r.Payload, &p) == nil {
				job, taskType = r.Job, p.TaskType
				for _, a := range p.Agents {
					models[a.ID] = a.Model
				}
			}
		case demur.RecAgent:
			var p demur.AgentPayload
			if json.Unmarshal(r.Payload, &p) == nil && p.Model != "" {
				models[p.Agent] = p.Model
			}
		case demur.RecVerdict:
			var p demur.VerdictPayload
			if json.Unmarshal(r.Payload, &p) != nil {
				continue
			}
			bad := p.Verdict.Kind.IsRefusal()
			out = append(out, Event{Time: r.Time, SLI: RefusalRate, Bad: bad, Job: job, TaskType: taskType, Model: models[p.Agent], Task: p.Task})
			if _, ok := open[p.Task]; bad && !ok {
				open[p.Task] = refused{at: r.Time, model: models[p.Agent]}
			}
		case demur.RecSection:
			var p demur.SectionPayload
			if json.Unmarshal(r.Payload, &p) == nil && (p.Parts == 0 || p.Part == p.Parts) {
				recover(p.Task, r.Time)
			}
		case demur.RecJobEnd:
			var p demur.JobEndPayload
			if json.Unmarshal(r.Payload, &p) != nil {
				continue
			}
			missing := map[string]bool{}
			for _, m := range p.Missing {
				missing[m] = true
			}
			for i := range p.Total {
				out = append(out, Event{Time: r.Time, SLI: AbandonmentRate, Bad: i < len(p.Missing), Job: job, TaskType: taskType})
			}
			for id, o := range open {
				out = append(out, Event{Time: r.Time, SLI: RecoveryTime, Job: job, TaskType: taskType, Model: o.model, Task: id, Latency: r.Time.Sub(o.at)})
				delete(open, id)
			}
		}
	}
	for id, o := range open {
		out = append(out, Event{Time: now, SLI: RecoveryTime, Job: job, TaskType: taskType, Model: o.model, Task: id, Latency: now.Sub(o.at), Open: true})
	}
	return out
}
