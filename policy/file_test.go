package policy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/demurhq/demur"
)

const goodFile = `version: 1
defaults:
  min_confidence: 0.6
  limits: {retire_after: 2, max_attempts: 32, max_job_refusals: 200}
task_types:
  long_form_document:
    risk: low
    on:
      refuse: [reframe, refresh_context, reassign, escalate]
      partial: [retry, reassign]
    early_warning: {hazard: 0.8, action: rotate}
    storm: {window: 50, max_refusal_rate: 0.3, action: escalate}
    escalate: {timeout: 10m, default: reassign}
    fallback_model: llama-3-70b-class
    overrides:
      force: {role: admin, approvals: 2}
      pause: {role: operator, approvals: 1}
  medical:
    risk: high
    on: {refuse: [escalate]}
`

func TestParseGood(t *testing.T) {
	f, err := Parse("good.yaml", []byte(goodFile))
	if err != nil {
		t.Fatal(err)
	}
	lf := f.Rules(TypeLongForm)
	if lf.MinConfidence != 0.6 || lf.MaxJobRefusals != 200 || lf.Risk != RiskLow || lf.Fallback != "llama-3-70b-class" {
		t.Fatalf("long_form_document: %+v", lf)
	}
	if got := lf.On[demur.KindRefuse]; len(got) != 4 || got[3] != demur.ActionEscalate {
		t.Fatalf("refuse ladder %v", got)
	}
	if got := lf.On[demur.KindDegraded]; len(got) != 2 || got[0] != demur.ActionRefreshContext {
		t.Fatalf("degraded ladder not inherited from the baseline: %v", got)
	}
	if lf.EarlyWarning == nil || lf.EarlyWarning.Hazard != 0.8 || lf.EarlyWarning.Action != demur.ActionRotate {
		t.Fatalf("early warning %+v", lf.EarlyWarning)
	}
	if lf.Storm == nil || lf.Storm.Window != 50 || lf.Storm.Action != demur.ActionEscalate {
		t.Fatalf("storm %+v", lf.Storm)
	}
	if lf.Escalate.Timeout != 10*time.Minute || lf.Escalate.Default != demur.ActionReassign {
		t.Fatalf("escalate %+v", lf.Escalate)
	}
	med := f.Rules(TypeMedical)
	if med.Risk != RiskHigh || len(med.On[demur.KindRefuse]) != 1 || med.EarlyWarning != nil || med.RetireAfter != 2 {
		t.Fatalf("medical: %+v", med)
	}
	// A type the file leaves out keeps its intrinsic risk and the defaults.
	if fin := f.Rules(TypeFinancial); fin.Risk != RiskHigh || fin.MinConfidence != 0.6 {
		t.Fatalf("financial: %+v", fin)
	}
	if f.Rules("no_such_type").TaskType != TypeOther {
		t.Fatal("an unknown type should get other's rules")
	}
	mine := f.Rules(TypeLongForm)
	mine.RetireAfter = 99
	mine.On[demur.KindRefuse][0] = demur.ActionAbort
	if again := f.Rules(TypeLongForm); again.RetireAfter == 99 || again.On[demur.KindRefuse][0] == demur.ActionAbort {
		t.Fatal("changing one caller's rules changed the file's")
	}
	if role, n := f.OverrideRule(TypeLongForm, demur.ActionForce); role != demur.RoleAdmin || n != 2 {
		t.Fatalf("force: %s × %d", role, n)
	}
	if role, n := f.OverrideRule(TypeMedical, demur.ActionPause); role != demur.RoleOperator || n != 1 {
		t.Fatalf("pause on medical (baseline): %s × %d", role, n)
	}
	if role, n := f.OverrideRule(TypeMedical, demur.ActionSplit); role != demur.RoleAdmin || n != 2 {
		t.Fatalf("an unlisted override must be the strictest, got %s × %d", role, n)
	}
}

func TestParseBad(t *testing.T) {
	cases := []struct {
		name, old, new, want string
	}{
		{"unknown key", "    fallback_model: llama-3-70b-class\n", "    fallback_model: llama-3-70b-class\n    retire_after: 3\n", `bad.yaml:15:5: unknown field "retire_after"`},
		{"wrong type", "min_confidence: 0.6", "min_confidence: high", "bad.yaml:3:19: wrong type: want a number, got string"},
		{"unknown action", "partial: [retry, reassign]", "partial: [retry, reasign]", `bad.yaml:10:24: unknown action "reasign"`},
		{"force in a ladder", "partial: [retry, reassign]", "partial: [retry, force]", "bad.yaml:10:24: force is not a ladder action: only an authorized override forces"},
		{"unknown verdict kind", "      partial:", "      partal:", `bad.yaml:10:7: unknown verdict kind "partal"`},
		{"comply ladder", "      partial:", "      comply:", "bad.yaml:10:7: comply takes no ladder"},
		{"unknown task type", "  medical:", "  medicine:", `bad.yaml:18:3: unknown task type "medicine"`},
		{"unknown role", "role: operator", "role: superuser", `bad.yaml:17:21: unknown role "superuser"`},
		{"viewer role", "role: operator", "role: viewer", "bad.yaml:17:21: role viewer may not request overrides"},
		{"unknown override", "      pause:", "      delete:", `bad.yaml:17:7: unknown override action "delete"`},
		{"approvals below 1", "approvals: 2", "approvals: 0", "bad.yaml:16:39: approvals must be ≥ 1"},
		{"min_confidence above 1", "min_confidence: 0.6", "min_confidence: 1.5", "bad.yaml:3:19: min_confidence must be within 0–1, got 1.5"},
		{"storm window below 1", "window: 50", "window: 0", "bad.yaml:12:21: storm.window must be ≥ 1 turn, got 0"},
		{"storm rate above 1", "max_refusal_rate: 0.3", "max_refusal_rate: 1.3", "bad.yaml:12:43: storm.max_refusal_rate must be within 0–1, got 1.3"},
		{"storm rate negative", "max_refusal_rate: 0.3", "max_refusal_rate: -0.1", "bad.yaml:12:43: storm.max_refusal_rate must be within 0–1"},
		{"negative limit", "max_job_refusals: 200", "max_job_refusals: -5", "bad.yaml:4:65: max_job_refusals must be ≥ 0 (0 means no limit), got -5"},
		{"zero max_attempts", "max_attempts: 32", "max_attempts: 0", "bad.yaml:4:43: max_attempts must be ≥ 1, got 0"},
		{"escalate timeout", "timeout: 10m", "timeout: ten minutes", `bad.yaml:13:25: escalate.timeout "ten minutes" is not a duration`},
		{"empty ladder", "on: {refuse: [escalate]}", "on: {refuse: []}", "bad.yaml:20:18: the refuse ladder is empty"},
		{"duplicate task type", "    on: {refuse: [escalate]}\n", "    on: {refuse: [escalate]}\n  medical: {risk: low}\n", `bad.yaml:21:3: mapping key "medical" already defined at [18:3]`},
		{"early warning hazard", "hazard: 0.8", "hazard: 2", "bad.yaml:11:29: early_warning.hazard must be within 0–1, got 2"},
		{"early warning action", "action: rotate", "action: escalate", "bad.yaml:11:42: escalate is not an early-warning action"},
		{"storm action", "action: escalate}", "action: retry}", "bad.yaml:12:56: retry is not a storm action"},
		{"bad risk", "risk: high", "risk: extreme", `bad.yaml:19:11: unknown risk "extreme"`},
		{"bad version", "version: 1", "version: 2", "bad.yaml:1:10: unsupported version 2 (want 1)"},
		{"missing version", "version: 1\n", "", "bad.yaml:1:1: version is required"},
		{"syntax", "risk: low", "risk: [low", "bad.yaml:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := strings.Replace(goodFile, c.old, c.new, 1)
			if src == goodFile {
				t.Fatal("case did not change the file")
			}
			_, err := Parse("bad.yaml", []byte(src))
			if err == nil {
				t.Fatal("accepted a bad file")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			if !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("error %q does not start with %q", err, c.want)
			}
		})
	}
}

func TestParseReportsEveryError(t *testing.T) {
	src := strings.Replace(strings.Replace(goodFile, "window: 50", "window: 0", 1), "approvals: 2", "approvals: 0", 1)
	_, err := Parse("bad.yaml", []byte(src))
	var es Errors
	if !errors.As(err, &es) || len(es) != 2 || es[0].Line != 12 || es[1].Line != 16 {
		t.Fatalf("want both errors in file order, got %v", err)
	}
}

func TestDefaultFile(t *testing.T) {
	f := DefaultFile()
	for _, typ := range TaskTypes {
		p := f.Rules(typ)
		if p.TaskType != typ || p.Risk != intrinsicRisk[typ] {
			t.Errorf("%s: type %q risk %s", typ, p.TaskType, p.Risk)
		}
		for _, k := range []demur.Kind{demur.KindRefuse, demur.KindPartial, demur.KindDegraded} {
			if len(p.On[k]) == 0 {
				t.Errorf("%s: no %s ladder", typ, k)
			}
			for _, a := range p.On[k] {
				if a == demur.ActionForce {
					t.Errorf("%s: force in the %s ladder", typ, k)
				}
			}
		}
		if role, n := f.OverrideRule(typ, demur.ActionForce); role != demur.RoleAdmin || n < 2 {
			t.Errorf("%s: force needs only %s × %d", typ, role, n)
		}
	}
	for _, typ := range []string{TypeMedical, TypeLegal, TypeFinancial} {
		if got := f.Rules(typ).On[demur.KindRefuse]; len(got) != 1 || got[0] != demur.ActionEscalate {
			t.Errorf("%s: a refusal in a high-risk domain must go to a person, ladder %v", typ, got)
		}
	}
	if string(DefaultYAML()) != string(defaultYAML) {
		t.Fatal("DefaultYAML differs from the embedded file")
	}
}
