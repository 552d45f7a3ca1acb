// Package policy is the refusal router: given a verdict and where the work
// stands, it decides what the system does next and records why.
//
// A policy holds an action ladder per verdict kind: the first occurrence of
// a kind on a task takes the first rung, each repeat one rung further, and
// the last rung repeats. Every decision carries its path: each rule
// considered, whether it matched, and why.
package policy

import (
	"fmt"

	"github.com/demurhq/demur"
)

// Policy is the router's configuration for one task type.
type Policy struct {
	// MinConfidence is the confidence below which a non-comply verdict is
	// not acted on.
	MinConfidence float64
	// On maps a verdict kind to its action ladder.
	On map[demur.Kind][]demur.Action
	// RetireAfter is how many refusals take an agent out of the job.
	RetireAfter int
	// MaxAttempts bounds hand-outs of one task; past it the task is aborted
	// and the job reports it missing.
	MaxAttempts int
}

// Default returns the spine's policy: a refused or partial section goes to
// another agent; a degraded one is redone in a fresh context, then moved.
func Default() *Policy {
	return &Policy{
		MinConfidence: 0.5,
		On: map[demur.Kind][]demur.Action{
			demur.KindRefuse:   {demur.ActionReassign},
			demur.KindPartial:  {demur.ActionReassign},
			demur.KindDegraded: {demur.ActionRefreshContext, demur.ActionReassign},
		},
		RetireAfter: 2,
		MaxAttempts: 32,
	}
}

// Input is what the router knows when it decides.
type Input struct {
	Verdict demur.Verdict
	// Attempt is this task's hand-out count, including the current one.
	Attempt int
	// Repeats counts earlier verdicts of the same kind on this task.
	Repeats int
	// AgentRefusals counts this agent's refusals, including this verdict.
	AgentRefusals int
	// OtherAgents counts live agents other than the one that produced the turn.
	OtherAgents int
}

// needsOther reports whether an action hands the task to another agent.
func needsOther(a demur.Action) bool {
	return a == demur.ActionReassign || a == demur.ActionRotate
}

// Decide returns the decision for in, with its full path.
func (p *Policy) Decide(in Input) demur.Decision {
	var d demur.Decision
	step := func(rule string, matched bool, format string, args ...any) bool {
		d.Path = append(d.Path, demur.Step{Rule: rule, Matched: matched, Why: fmt.Sprintf(format, args...)})
		return matched
	}
	v := in.Verdict
	choose := func(rule string, a demur.Action) demur.Decision {
		d.Rule, d.Action = rule, a
		return d
	}
	if step("comply", v.Kind == demur.KindComply, "verdict is %s", v.Kind) {
		return choose("comply", demur.ActionAccept)
	}
	if step("min_confidence", v.Confidence < p.MinConfidence, "confidence %.2f vs minimum %.2f", v.Confidence, p.MinConfidence) {
		return choose("min_confidence", demur.ActionAccept)
	}
	if v.Kind.IsRefusal() {
		d.Retire = step("retire_after", in.AgentRefusals >= p.RetireAfter,
			"agent has %d refusal(s), retire after %d", in.AgentRefusals, p.RetireAfter)
	}
	if step("max_attempts", in.Attempt >= p.MaxAttempts, "attempt %d of at most %d", in.Attempt, p.MaxAttempts) {
		return choose("max_attempts", demur.ActionAbort)
	}
	ladder := p.On[v.Kind]
	rule := fmt.Sprintf("on.%s", v.Kind)
	if !step(rule, len(ladder) > 0, "%d rung(s) for %s", len(ladder), v.Kind) {
		return choose("default", demur.ActionAccept)
	}
	rung := min(in.Repeats, len(ladder)-1)
	a := ladder[rung]
	rule = fmt.Sprintf("on.%s[%d]", v.Kind, rung)
	step(rule, true, "repeat %d of %s on this task takes rung %d: %s", in.Repeats, v.Kind, rung, a)
	if needsOther(a) && !step("no_other_agent", in.OtherAgents == 0, "%d other live agent(s)", in.OtherAgents) {
		return choose(rule, a)
	}
	if needsOther(a) {
		if d.Retire {
			return choose("no_other_agent", demur.ActionAbort)
		}
		return choose("no_other_agent", demur.ActionRetry)
	}
	return choose(rule, a)
}
