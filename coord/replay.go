package coord

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/demurhq/demur"
)

// replay rebuilds the coordinator's state from the job's records, so that a
// job interrupted at any point resumes with no section lost or written
// twice. Tasks handed out but not answered go back on the queue.
func (c *Coordinator) replay(ctx context.Context) error {
	recs, err := c.cfg.Store.Records(ctx, demur.Query{Job: c.cfg.Job, Stream: c.cfg.Job})
	if err != nil {
		return err
	}
	for _, r := range recs {
		if err := c.replayOne(r); err != nil {
			return fmt.Errorf("record %d (%s): %w", r.Seq, r.Kind, err)
		}
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
			c.aborted[p.Task] = true
		case demur.ActionSplit:
			c.split(p.Task)
			c.queue = nil // rebuilt from the plan once replay ends
		}
	case demur.RecSection:
		var p demur.SectionPayload
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			return err
		}
		c.done[p.Task] = true
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
	}
	return nil
}
