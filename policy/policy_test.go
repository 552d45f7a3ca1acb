package policy

import (
	"testing"

	"github.com/demurhq/demur"
)

func verdict(k demur.Kind, conf float64) demur.Verdict {
	return demur.Verdict{Kind: k, Confidence: conf}
}

func TestDecide(t *testing.T) {
	p := Default()
	cases := []struct {
		name   string
		in     Input
		want   demur.Action
		retire bool
	}{
		{"comply accepted", Input{Verdict: verdict(demur.KindComply, 0.9), Attempt: 1}, demur.ActionAccept, false},
		{"low confidence refusal accepted", Input{Verdict: verdict(demur.KindRefuse, 0.3), Attempt: 1, AgentRefusals: 1, OtherAgents: 3}, demur.ActionAccept, false},
		{"refusal reassigned", Input{Verdict: verdict(demur.KindRefuse, 0.9), Attempt: 1, AgentRefusals: 1, OtherAgents: 3}, demur.ActionReassign, false},
		{"second refusal retires", Input{Verdict: verdict(demur.KindRefuse, 0.9), Attempt: 2, AgentRefusals: 2, OtherAgents: 3}, demur.ActionReassign, true},
		{"degraded refreshed first", Input{Verdict: verdict(demur.KindDegraded, 0.8), Attempt: 1, OtherAgents: 3}, demur.ActionRefreshContext, false},
		{"degraded twice reassigned", Input{Verdict: verdict(demur.KindDegraded, 0.8), Attempt: 2, Repeats: 1, OtherAgents: 3}, demur.ActionReassign, false},
		{"ladder top repeats", Input{Verdict: verdict(demur.KindDegraded, 0.8), Attempt: 3, Repeats: 5, OtherAgents: 3}, demur.ActionReassign, false},
		{"last agent retries", Input{Verdict: verdict(demur.KindPartial, 0.8), Attempt: 1, AgentRefusals: 1}, demur.ActionRetry, false},
		{"last agent retired aborts", Input{Verdict: verdict(demur.KindRefuse, 0.8), Attempt: 1, AgentRefusals: 2}, demur.ActionAbort, true},
		{"attempts exhausted", Input{Verdict: verdict(demur.KindDegraded, 0.8), Attempt: 32, OtherAgents: 2}, demur.ActionAbort, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := p.Decide(c.in)
			if d.Action != c.want || d.Retire != c.retire {
				t.Fatalf("got %s retire=%v, want %s retire=%v; path %+v", d.Action, d.Retire, c.want, c.retire, d.Path)
			}
			if len(d.Path) == 0 || d.Rule == "" {
				t.Fatalf("decision without a path: %+v", d)
			}
			if d.Rule != "default" && !hasMatched(d.Path, d.Rule) {
				t.Errorf("chosen rule %s is not a matched step of %+v", d.Rule, d.Path)
			}
		})
	}
}

func TestDecidePathExplainsMisses(t *testing.T) {
	d := Default().Decide(Input{Verdict: verdict(demur.KindRefuse, 0.9), Attempt: 1, AgentRefusals: 1, OtherAgents: 1})
	var missed int
	for _, s := range d.Path {
		if !s.Matched {
			missed++
			if s.Why == "" {
				t.Errorf("step %s has no reason", s.Rule)
			}
		}
	}
	if missed < 3 {
		t.Fatalf("expected the unmatched rules in the path, got %+v", d.Path)
	}
}

func hasMatched(path []demur.Step, rule string) bool {
	for _, s := range path {
		if s.Rule == rule && s.Matched {
			return true
		}
	}
	return false
}

func fileRules(t *testing.T, typ string) *Policy {
	t.Helper()
	f, err := Parse("good.yaml", []byte(goodFile))
	if err != nil {
		t.Fatal(err)
	}
	return f.Rules(typ)
}

func TestDecideFileRules(t *testing.T) {
	lf := fileRules(t, TypeLongForm)
	med := fileRules(t, TypeMedical)
	cases := []struct {
		name string
		p    *Policy
		in   Input
		want demur.Action
		rule string
		next demur.Action
	}{
		{"early warning acts on the next task", lf, Input{Verdict: verdict(demur.KindComply, 0.9), Hazard: 0.85, OtherAgents: 2}, demur.ActionAccept, "early_warning", demur.ActionRotate},
		{"low hazard is plain accept", lf, Input{Verdict: verdict(demur.KindComply, 0.9), Hazard: 0.3, OtherAgents: 2}, demur.ActionAccept, "comply", ""},
		{"rotate with a fallback model needs no other agent", lf, Input{Verdict: verdict(demur.KindComply, 0.9), Hazard: 0.9}, demur.ActionAccept, "early_warning", demur.ActionRotate},
		{"storm breaks the ladder", lf, Input{Verdict: verdict(demur.KindRefuse, 0.9), Attempt: 1, AgentRefusals: 1, OtherAgents: 3, WindowRefusalRate: 0.4, WindowSize: 50, JobRefusals: 20}, demur.ActionEscalate, "storm", ""},
		{"storm needs a full window", lf, Input{Verdict: verdict(demur.KindRefuse, 0.9), Attempt: 1, AgentRefusals: 1, OtherAgents: 3, WindowRefusalRate: 0.9, WindowSize: 10, JobRefusals: 9}, demur.ActionReframe, "on.refuse[0]", ""},
		{"job refusal budget spent", lf, Input{Verdict: verdict(demur.KindRefuse, 0.9), Attempt: 1, AgentRefusals: 1, OtherAgents: 3, JobRefusals: 200}, demur.ActionAbort, "max_job_refusals", ""},
		{"ladder climbs on repeats", lf, Input{Verdict: verdict(demur.KindRefuse, 0.9), Attempt: 3, Repeats: 2, AgentRefusals: 1, OtherAgents: 3}, demur.ActionReassign, "on.refuse[2]", ""},
		{"ladder top escalates", lf, Input{Verdict: verdict(demur.KindRefuse, 0.9), Attempt: 5, Repeats: 7, AgentRefusals: 1, OtherAgents: 3}, demur.ActionEscalate, "on.refuse[3]", ""},
		{"medical refusal goes to a person", med, Input{Verdict: verdict(demur.KindRefuse, 0.9), Attempt: 1, AgentRefusals: 1, OtherAgents: 3}, demur.ActionEscalate, "on.refuse[0]", ""},
		{"medical has no early warning", med, Input{Verdict: verdict(demur.KindComply, 0.9), Hazard: 0.99}, demur.ActionAccept, "comply", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := c.p.Decide(c.in)
			if d.Action != c.want || d.Rule != c.rule || d.Next != c.next {
				t.Fatalf("got %s by %s next %q, want %s by %s next %q; path %+v", d.Action, d.Rule, d.Next, c.want, c.rule, c.next, d.Path)
			}
			if !hasMatched(d.Path, d.Rule) {
				t.Errorf("chosen rule %s is not a matched step of %+v", d.Rule, d.Path)
			}
			if d.Action == demur.ActionEscalate && !hasMatched(d.Path, "escalate") {
				t.Errorf("an escalation must say what happens on timeout: %+v", d.Path)
			}
		})
	}
}

func TestDecideEarlyWarningWithoutOtherAgents(t *testing.T) {
	p := Default()
	p.EarlyWarning = &EarlyWarning{Hazard: 0.5, Action: demur.ActionRotate}
	d := p.Decide(Input{Verdict: verdict(demur.KindComply, 0.9), Hazard: 0.6})
	if d.Action != demur.ActionAccept || d.Next != demur.ActionRefreshContext || !hasMatched(d.Path, "no_other_agent") {
		t.Fatalf("a lone agent should get a fresh context instead of a rotation: %+v", d)
	}
}

func TestDecidePathListsEveryRule(t *testing.T) {
	d := fileRules(t, TypeLongForm).Decide(Input{Verdict: verdict(demur.KindRefuse, 0.9), Attempt: 1, AgentRefusals: 1, OtherAgents: 3, WindowSize: 50, WindowRefusalRate: 0.1, JobRefusals: 3})
	var rules []string
	for _, s := range d.Path {
		rules = append(rules, s.Rule)
		if s.Why == "" {
			t.Errorf("step %s has no reason", s.Rule)
		}
	}
	want := []string{"comply", "min_confidence", "retire_after", "max_job_refusals", "storm", "max_attempts", "on.refuse", "on.refuse[0]"}
	if len(rules) != len(want) {
		t.Fatalf("path %v, want %v", rules, want)
	}
	for i := range want {
		if rules[i] != want[i] {
			t.Fatalf("path %v, want %v", rules, want)
		}
	}
}

func TestNone(t *testing.T) {
	p := None()
	if !p.IsNone() || Default().IsNone() {
		t.Fatal("IsNone")
	}
	cases := []struct {
		k    demur.Kind
		conf float64
		want demur.Action
	}{
		{demur.KindComply, 0.9, demur.ActionAccept},
		{demur.KindRefuse, 0.9, demur.ActionAbort},
		{demur.KindPartial, 0.9, demur.ActionAbort},
		{demur.KindDegraded, 0.9, demur.ActionAccept},
		{demur.KindRefuse, 0.2, demur.ActionAccept},
	}
	for _, c := range cases {
		d := p.Decide(Input{Verdict: verdict(c.k, c.conf), Attempt: 1, AgentRefusals: 5, OtherAgents: 3, Hazard: 1, WindowSize: 100, WindowRefusalRate: 1})
		if d.Action != c.want || d.Retire || d.Next != "" {
			t.Errorf("none on %s (%.1f): %+v, want %s and nothing else", c.k, c.conf, d, c.want)
		}
		if len(d.Path) == 0 || d.Path[0].Rule != "policy" {
			t.Errorf("none's path should say so: %+v", d.Path)
		}
	}
}

// TestEarlyWarningOnDegradedTurn: a degraded turn takes its ladder, and a
// high hazard also sets how the agent's next task is handed out.
func TestEarlyWarningOnDegradedTurn(t *testing.T) {
	p := Default()
	p.EarlyWarning = &EarlyWarning{Hazard: 0.3, Action: demur.ActionReframe}
	d := p.Decide(Input{Verdict: demur.Verdict{Kind: demur.KindDegraded, Confidence: 0.9}, Attempt: 1, OtherAgents: 2, Hazard: 0.6})
	if d.Action != demur.ActionRefreshContext || d.Next != demur.ActionReframe {
		t.Fatalf("got %s next %s; path %+v", d.Action, d.Next, d.Path)
	}
	d = p.Decide(Input{Verdict: demur.Verdict{Kind: demur.KindDegraded, Confidence: 0.9}, Attempt: 1, OtherAgents: 2, Hazard: 0.1})
	if d.Next != "" {
		t.Fatalf("low hazard set next %s", d.Next)
	}
}
