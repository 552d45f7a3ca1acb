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
