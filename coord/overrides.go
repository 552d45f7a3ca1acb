package coord

import (
	"fmt"
	"time"

	"github.com/demurhq/demur"
)

// OverridePayload is the coordinator's record of carrying out (or not) an
// approved override.
type OverridePayload struct {
	Override demur.Override `json:"override"`
	Outcome  string         `json:"outcome"` // "applied" or "rejected: why"
}

// applyOverride carries out an approved override from the control subject
// and records the outcome. Each override ID is carried out at most once.
func (c *Coordinator) applyOverride(o demur.Override) {
	if o.Job != c.cfg.Job || c.applied[o.ID] {
		return
	}
	outcome := c.overrideOutcome(o)
	if outcome == demur.OverrideApplied {
		c.applied[o.ID] = true
		c.appliedNow = append(c.appliedNow, o)
	}
	o.Status = outcome
	if outcome != demur.OverrideApplied {
		o.Status = demur.OverrideRejected
	}
	c.record(demur.RecOverride, o.Requester, OverridePayload{Override: o, Outcome: outcome})
	c.emit(Event{Type: "override", Agent: o.Agent, Task: o.Task, Action: o.Action, Done: c.sectionsDone(), Total: c.planned})
}

// overrideOutcome applies o and says how it went.
func (c *Coordinator) overrideOutcome(o demur.Override) string {
	if o.Status != demur.OverrideApproved {
		return fmt.Sprintf("rejected: status %q, not approved", o.Status)
	}
	if !o.Expires.IsZero() && time.Now().After(o.Expires) {
		return fmt.Sprintf("rejected: expired at %s", o.Expires.Format(time.RFC3339))
	}
	if o.Agent != "" && c.agents[o.Agent] == nil {
		return fmt.Sprintf("rejected: no agent %q in this job", o.Agent)
	}
	switch o.Action {
	case demur.ActionPause, demur.ActionResume:
		pause := o.Action == demur.ActionPause
		if o.Agent == "" {
			c.paused = pause
			if !pause {
				delete(c.escalated, jobPauseKey)
			}
		} else {
			c.agents[o.Agent].paused = pause
		}
		return demur.OverrideApplied
	}
	if o.Task == "" {
		return fmt.Sprintf("rejected: %s needs a task", o.Action)
	}
	if _, ok := c.byID[o.Task]; !ok {
		return fmt.Sprintf("rejected: no task %q in this job", o.Task)
	}
	if c.done[o.Task] {
		return fmt.Sprintf("rejected: task %s is already written", o.Task)
	}
	if o.Agent != "" && !c.agents[o.Agent].live {
		return fmt.Sprintf("rejected: agent %s has left the job", o.Agent)
	}
	switch o.Action {
	case demur.ActionForce, demur.ActionRetry, demur.ActionAccept, demur.ActionAbort,
		demur.ActionReassign, demur.ActionRefreshContext, demur.ActionReframe, demur.ActionRotate:
	default:
		return fmt.Sprintf("rejected: %s is not an action an override can take", o.Action)
	}
	if o.Action == demur.ActionAccept {
		if _, ok := c.last[o.Task]; !ok {
			return fmt.Sprintf("rejected: task %s has no output to accept", o.Task)
		}
	}
	c.unqueue(o.Task)
	c.carryOut(o.Task, o.Agent, o.Action, reframe(&c.cfg.Tasks[c.byID[o.Task]]))
	return demur.OverrideApplied
}

// unqueue drops a task's waiting entries, so an override replaces what the
// router had planned for it instead of doubling it.
func (c *Coordinator) unqueue(id string) {
	idx := c.byID[id]
	q := c.queue[:0]
	for _, e := range c.queue {
		if e.task != idx {
			q = append(q, e)
		}
	}
	c.queue = q
}
