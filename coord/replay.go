package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/demurhq/demur"
)

// ErrDuplicateSection is returned by Run when the log holds two
// section.done records for one task.
var ErrDuplicateSection = errors.New("duplicate section completion in the log")

// replay rebuilds the coordinator's state from the job's records, so that a
// job interrupted at any point resumes with no section lost or written
// twice. Tasks handed out but not answered go back on the queue.
func (c *Coordinator) replay(ctx context.Context) error {
	recs, err := c.cfg.Store.Records(ctx, demur.Query{Job: c.cfg.Job, Stream: c.cfg.Job})
	if err != nil {
		return err
	}
	assigned := map[string]bool{}
	for _, r := range recs {
		if r.Kind == demur.RecAssign {
			var p demur.AssignPayload
			if json.Unmarshal(r.Payload, &p) == nil {
				assigned[fmt.Sprintf("%s/%d", p.Task, p.Attempt)] = true
			}
		}
		if err := c.replayOne(r); err != nil {
			return fmt.Errorf("record %d (%s): %w", r.Seq, r.Kind, err)
		}
	}
	// An attempt handed out but never answered is abandoned: its task goes
	// back on the queue under a new attempt number, and a late answer to
	// the old one (a task still queued or in flight on an external bus when
	// the previous coordinator died) is dropped like a duplicate, so it can
	// neither write the section nor free an agent that is busy again.
	for key := range assigned {
		c.seen[key] = true
	}
	for i, t := range c.cfg.Tasks {
		if !c.done[t.ID] && !c.aborted[t.ID] && c.splitInto[t.ID] == nil {
			c.queue = append(c.queue, queued{task: i})
		}
	}
	return nil
}

func (c *Coordinator) replayOne(r *demur.Record) error {
	switch r.Kind {
	case demur.RecJobStart:
		c.started = true
	case demur.RecJobEnd:
		var p demur.JobEndPayload
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			return err
		}
		c.ended = &p
	case demur.RecAssign:
		var p demur.AssignPayload
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			return err
		}
		c.attempts[p.Task] = max(c.attempts[p.Task], p.Attempt)
	case demur.RecTurn:
		var p demur.TurnPayload
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			return err
		}
		c.seen[fmt.Sprintf("%s/%d", p.Task, p.Attempt)] = true
		if a := c.agents[p.Agent]; a != nil {
			a.tokens += int64(p.Usage.CompletionTokens)
			a.words += int64(p.Words)
		}
	case demur.RecVerdict:
		var p demur.VerdictPayload
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			return err
		}
		refused := p.Verdict.Kind.IsRefusal() && p.Verdict.Confidence >= c.cfg.Policy.MinConfidence
		c.window.add(refused)
		if refused {
			c.jobRefusals++
			if a := c.agents[p.Agent]; a != nil {
				a.refusals++
			}
		}
		if c.repeats[p.Task] == nil {
			c.repeats[p.Task] = map[demur.Kind]int{}
		}
		c.repeats[p.Task][p.Verdict.Kind]++
	case demur.RecDecision:
		var p demur.DecisionPayload
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			return err
		}
		switch p.Decision.Action {
		case demur.ActionAbort:
			c.markAborted(p.Task)
		case demur.ActionSplit:
			c.split(p.Task)
			c.queue = nil // rebuilt from the plan once replay ends
		}
	case demur.RecSection:
		var p demur.SectionPayload
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			return err
		}
		if c.done[p.Task] {
			// Task/attempt is each completion's idempotency key, and a task
			// completes once: two records mean two writers raced (say, two
			// coordinators of one job), and resuming would hide it.
			return fmt.Errorf("%w: section %s completed twice (again by attempt %d)", ErrDuplicateSection, p.Task, p.Attempt)
		}
		c.markDone(p.Task)
	case demur.RecOverride:
		var p OverridePayload
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			return err
		}
		if p.Outcome == demur.OverrideApplied {
			c.applied[p.Override.ID] = true
		}
	case demur.RecAgent:
		var p demur.AgentPayload
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			return err
		}
		if a := c.agents[p.Agent]; a != nil && p.State == "retired" {
			a.live = false
		}
		if p.State == "joined" && c.agents[p.Agent] == nil {
			if c.cfg.Spawn == nil {
				return fmt.Errorf("agent %s joined mid-job and nothing can start it again", p.Agent)
			}
			if err := c.cfg.Spawn(p.Agent, p.Model); err != nil {
				return fmt.Errorf("restart agent %s: %w", p.Agent, err)
			}
			c.spawned++
			c.join(demur.AgentEntry{ID: p.Agent, Backend: "fallback", Model: p.Model})
		}
	}
	return nil
}
