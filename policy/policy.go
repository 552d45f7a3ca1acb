// Package policy is the refusal router: given a verdict and where the work
// stands, it decides what the system does next and records why.
//
// A policy holds an action ladder per verdict kind: the first occurrence of
// a kind on a task takes the first rung, each repeat one rung further, and
// the last rung repeats. Every decision carries its path: each rule
// considered, whether it matched, and why.
//
// Policies come from a policy file (see File, Parse and the embedded
// default.yaml): one Policy per task type. A task that declares no type is
// classified from its text (Classify, File.Resolve); when the classifier is
// unsure, the stricter type's policy applies.
package policy

import (
	"fmt"
	"time"

	"github.com/demurhq/demur"
)

// Policy is the router's configuration for one task type.
type Policy struct {
	// TaskType is the type these rules are for; empty for Default.
	TaskType string
	// Risk orders task types by strictness when the classifier is unsure.
	Risk Risk
	// MinConfidence is the confidence below which a non-comply verdict is
	// not acted on.
	MinConfidence float64
	// On maps a verdict kind to its action ladder.
	On map[demur.Kind][]demur.Action
	// RetireAfter is how many refusals take an agent out of the job; 0
	// never retires.
	RetireAfter int
	// MaxAttempts bounds hand-outs of one task; past it the task is aborted
	// and the job reports it missing.
	MaxAttempts int
	// MaxJobRefusals is how many refusals a whole job may see before the
	// router stops spending budget on them: from then on a refused task is
	// aborted. 0 means no limit.
	MaxJobRefusals int
	// EarlyWarning, when set, acts on an agent whose refusal hazard is high
	// before it refuses.
	EarlyWarning *EarlyWarning
	// Storm, when set, is the breaker for refusal storms.
	Storm *Storm
	// Escalate says how long an escalated task waits for a person and what
	// happens when nobody answers.
	Escalate Escalate
	// Fallback is the model or profile a rotate moves work to; empty means
	// rotate moves it to another agent of the job.
	Fallback string
	// Overrides says which role may use each override action and how many
	// distinct people must approve it.
	Overrides map[demur.Action]OverrideRule

	// none marks the no-router baseline, see None.
	none bool
}

// EarlyWarning acts on the monitor's hazard on a compliant turn: the
// section is accepted and Action applies to the agent's next task.
type EarlyWarning struct {
	// Hazard is the threshold, 0–1, at or above which Action is taken.
	Hazard float64
	// Action is rotate, refresh_context, reframe, reassign or split; accept
	// turns the early warning off.
	Action demur.Action
}

// Storm is a breaker: when more than MaxRefusalRate of the job's last
// Window turns were refusals, retries would only burn budget, so a
// non-comply verdict takes Action (escalate, pause or abort) instead of its
// ladder.
type Storm struct {
	Window         int
	MaxRefusalRate float64
	Action         demur.Action
}

// Escalate configures the escalate action.
type Escalate struct {
	// Timeout is how long an escalated task waits for a person.
	Timeout time.Duration
	// Default is the action taken when nobody answers in time.
	Default demur.Action
}

// OverrideRule is who may use an override action.
type OverrideRule struct {
	// Role is the least role that may request it.
	Role demur.OperatorRole
	// Approvals counts the distinct people who must approve, the requester
	// included.
	Approvals int
}

// Default returns the spine's policy: a refused or partial section goes to
// another agent; a degraded one is redone in a fresh context, then moved.
// It predates policy files and is what a job without one runs on; the
// shipped file's rules are DefaultFile().
func Default() *Policy {
	return &Policy{
		Risk:          RiskLow,
		MinConfidence: 0.5,
		On: map[demur.Kind][]demur.Action{
			demur.KindRefuse:   {demur.ActionReassign},
			demur.KindPartial:  {demur.ActionReassign},
			demur.KindDegraded: {demur.ActionRefreshContext, demur.ActionReassign},
		},
		RetireAfter: 2,
		MaxAttempts: 32,
		Escalate:    Escalate{Timeout: 15 * time.Minute, Default: demur.ActionAbort},
		Overrides:   baselineOverrides(),
	}
}

// None returns the no-router baseline (`demur run --policy none`), the
// study's situation: nothing watches for refusals. A compliant or degraded
// turn is accepted as written (nobody checks its quality); a refused or
// partial one is aborted, so its section stays unwritten and the job
// reports it missing. Nothing is retried, reassigned or retired.
func None() *Policy {
	return &Policy{
		TaskType:      "none",
		Risk:          RiskLow,
		MinConfidence: 0.5,
		On:            map[demur.Kind][]demur.Action{},
		MaxAttempts:   1,
		Escalate:      Escalate{Timeout: 15 * time.Minute, Default: demur.ActionAbort},
		Overrides:     baselineOverrides(),
		none:          true,
	}
}

// clone returns a copy of p that shares nothing mutable with it.
func (p *Policy) clone() *Policy {
	c := *p
	c.On = make(map[demur.Kind][]demur.Action, len(p.On))
	for k, l := range p.On {
		c.On[k] = append([]demur.Action(nil), l...)
	}
	c.Overrides = make(map[demur.Action]OverrideRule, len(p.Overrides))
	for a, o := range p.Overrides {
		c.Overrides[a] = o
	}
	if p.EarlyWarning != nil {
		ew := *p.EarlyWarning
		c.EarlyWarning = &ew
	}
	if p.Storm != nil {
		st := *p.Storm
		c.Storm = &st
	}
	return &c
}

// IsNone reports whether p is the no-router baseline.
func (p *Policy) IsNone() bool { return p.none }

func baselineOverrides() map[demur.Action]OverrideRule {
	return map[demur.Action]OverrideRule{
		demur.ActionForce:  {Role: demur.RoleAdmin, Approvals: 2},
		demur.ActionAccept: {Role: demur.RoleOperator, Approvals: 1},
		demur.ActionAbort:  {Role: demur.RoleOperator, Approvals: 1},
		demur.ActionPause:  {Role: demur.RoleOperator, Approvals: 1},
		demur.ActionResume: {Role: demur.RoleOperator, Approvals: 1},
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
	// Hazard is the monitor's estimate, 0–1, that this agent refuses soon;
	// 0 when there is no monitor.
	Hazard float64
	// WindowRefusalRate is the share of refusals among the job's last
	// WindowSize turns, this one included; the storm breaker reads them.
	WindowRefusalRate float64
	WindowSize        int
	// JobRefusals counts the job's refusals, including this verdict.
	JobRefusals int
}

// needsOther reports whether an action hands the task to another agent.
func (p *Policy) needsOther(a demur.Action) bool {
	if a == demur.ActionRotate && p.Fallback != "" {
		return false // a fallback model needs no second agent
	}
	return a == demur.ActionReassign || a == demur.ActionRotate
}

// decider accumulates a decision's path.
type decider struct{ d demur.Decision }

func (x *decider) step(rule string, matched bool, format string, args ...any) bool {
	x.d.Path = append(x.d.Path, demur.Step{Rule: rule, Matched: matched, Why: fmt.Sprintf(format, args...)})
	return matched
}

func (x *decider) choose(rule string, a demur.Action) demur.Decision {
	x.d.Rule, x.d.Action = rule, a
	return x.d
}

// Decide returns the decision for in, with its full path: every rule the
// router considered, in order, whether it matched and why.
func (p *Policy) Decide(in Input) demur.Decision {
	x := &decider{}
	v := in.Verdict
	if p.none {
		return p.decideNone(x, v)
	}
	if x.step("comply", v.Kind == demur.KindComply, "verdict is %s", v.Kind) {
		return p.earlyWarning(x, in)
	}
	if x.step("min_confidence", v.Confidence < p.MinConfidence, "confidence %.2f vs minimum %.2f", v.Confidence, p.MinConfidence) {
		return x.choose("min_confidence", demur.ActionAccept)
	}
	if v.Kind == demur.KindDegraded {
		p.warnNext(x, in)
	}
	if v.Kind.IsRefusal() {
		if p.RetireAfter > 0 {
			x.d.Retire = x.step("retire_after", in.AgentRefusals >= p.RetireAfter,
				"agent has %d refusal(s), retire after %d", in.AgentRefusals, p.RetireAfter)
		} else {
			x.step("retire_after", false, "retire_after is 0: agents are never retired")
		}
		if p.MaxJobRefusals > 0 {
			if x.step("max_job_refusals", in.JobRefusals >= p.MaxJobRefusals,
				"job has %d refusal(s), at most %d are acted on", in.JobRefusals, p.MaxJobRefusals) {
				return x.choose("max_job_refusals", demur.ActionAbort)
			}
		} else {
			x.step("max_job_refusals", false, "no job refusal limit")
		}
	}
	if s := p.Storm; s != nil {
		enough := in.WindowSize >= s.Window
		if x.step("storm", enough && in.WindowRefusalRate > s.MaxRefusalRate,
			"refusal rate %.2f over the last %d turn(s) vs at most %.2f over %d", in.WindowRefusalRate, in.WindowSize, s.MaxRefusalRate, s.Window) {
			return p.final(x, "storm", s.Action)
		}
	} else {
		x.step("storm", false, "no storm breaker")
	}
	if x.step("max_attempts", in.Attempt >= p.MaxAttempts, "attempt %d of at most %d", in.Attempt, p.MaxAttempts) {
		return x.choose("max_attempts", demur.ActionAbort)
	}
	ladder := p.On[v.Kind]
	rule := fmt.Sprintf("on.%s", v.Kind)
	if !x.step(rule, len(ladder) > 0, "%d rung(s) for %s", len(ladder), v.Kind) {
		return x.choose("default", demur.ActionAccept)
	}
	rung := min(in.Repeats, len(ladder)-1)
	a := ladder[rung]
	rule = fmt.Sprintf("on.%s[%d]", v.Kind, rung)
	x.step(rule, true, "repeat %d of %s on this task takes rung %d: %s", in.Repeats, v.Kind, rung, a)
	if !p.needsOther(a) {
		return p.final(x, rule, a)
	}
	if !x.step("no_other_agent", in.OtherAgents == 0, "%d other live agent(s)", in.OtherAgents) {
		return x.choose(rule, a)
	}
	if x.d.Retire {
		return x.choose("no_other_agent", demur.ActionAbort)
	}
	return x.choose("no_other_agent", demur.ActionRetry)
}

// final chooses a, adding the escalation's terms to the path so that an
// explanation says what happens if nobody answers.
func (p *Policy) final(x *decider, rule string, a demur.Action) demur.Decision {
	if a == demur.ActionEscalate {
		x.step("escalate", true, "waits %s for a person, then %s", p.Escalate.Timeout, p.Escalate.Default)
	}
	return x.choose(rule, a)
}

// earlyWarning decides a compliant turn: it is accepted, and when the
// agent's hazard is high, Next says how its next task changes.
func (p *Policy) earlyWarning(x *decider, in Input) demur.Decision {
	if p.warnNext(x, in) {
		return x.choose("early_warning", demur.ActionAccept)
	}
	return x.choose("comply", demur.ActionAccept)
}

// warnNext sets Next from the early warning when the agent's hazard is at
// or above the threshold, and says whether it did. The warning is about the
// agent, not the turn: a degraded turn still takes its ladder, and the
// agent's next task is handed out as the warning says.
func (p *Policy) warnNext(x *decider, in Input) bool {
	ew := p.EarlyWarning
	if ew == nil || ew.Action == demur.ActionAccept || ew.Action == "" {
		x.step("early_warning", false, "no early warning")
		return false
	}
	if !x.step("early_warning", in.Hazard >= ew.Hazard, "hazard %.2f vs threshold %.2f", in.Hazard, ew.Hazard) {
		return false
	}
	next := ew.Action
	if p.needsOther(next) && x.step("no_other_agent", in.OtherAgents == 0,
		"%s needs another agent; %d other live agent(s)", next, in.OtherAgents) {
		next = demur.ActionRefreshContext // the next best relief on the same agent
	}
	x.d.Next = next
	return true
}

func (p *Policy) decideNone(x *decider, v demur.Verdict) demur.Decision {
	x.step("policy", true, "policy none: no refusal management")
	if x.step("comply", v.Kind == demur.KindComply, "verdict is %s", v.Kind) {
		return x.choose("comply", demur.ActionAccept)
	}
	if x.step("min_confidence", v.Confidence < p.MinConfidence, "confidence %.2f vs minimum %.2f", v.Confidence, p.MinConfidence) {
		return x.choose("min_confidence", demur.ActionAccept)
	}
	if x.step("none.refusal", v.Kind.IsRefusal(), "a %s leaves the section unwritten", v.Kind) {
		return x.choose("none.refusal", demur.ActionAbort)
	}
	x.step("none.degraded", true, "degraded output is accepted as written")
	return x.choose("none.degraded", demur.ActionAccept)
}
