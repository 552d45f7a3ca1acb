package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPolicyCheckDefault(t *testing.T) {
	var out, errb bytes.Buffer
	if code := execute([]string{"policy", "check", "../../policy/default.yaml"}, &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"valid (version 1)", "long_form_document  (risk low", "medical  (risk high", "on refuse:   escalate", "force admin×2"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if code := execute([]string{"policy", "check", "--json", "../../policy/default.yaml"}, &out, &errb); code != exitOK {
		t.Fatalf("--json exit %d: %s", code, errb.String())
	}
	var v struct {
		Valid     bool `json:"valid"`
		TaskTypes map[string]struct {
			Risk string              `json:"risk"`
			On   map[string][]string `json:"on"`
		} `json:"task_types"`
	}
	if err := json.Unmarshal(out.Bytes(), &v); err != nil || !v.Valid || len(v.TaskTypes) != 8 || v.TaskTypes["legal"].Risk != "high" {
		t.Fatalf("json %v: %s", err, out.String())
	}
}

func TestPolicyCheckBad(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]struct{ src, want string }{
		"unknown-key.yaml":  {"version: 1\ntask_types:\n  code:\n    retry_limit: 3\n", `unknown-key.yaml:4:5: unknown field "retry_limit"`},
		"bad-action.yaml":   {"version: 1\ntask_types:\n  code:\n    on: {refuse: [beg]}\n", `bad-action.yaml:4:19: unknown action "beg"`},
		"bad-timeout.yaml":  {"version: 1\ndefaults:\n  escalate: {timeout: soon}\n", `bad-timeout.yaml:3:23: escalate.timeout "soon" is not a duration`},
		"bad-type.yaml":     {"version: 1\ntask_types:\n  poetry: {}\n", `bad-type.yaml:3:3: unknown task type "poetry"`},
		"wrong-type.yaml":   {"version: 1\ndefaults:\n  storm: {window: many, max_refusal_rate: 0.2}\n", "wrong-type.yaml:3:19: wrong type: want an integer"},
		"no-version.yaml":   {"task_types: {}\n", "no-version.yaml:1:1: version is required"},
		"approvals.yaml":    {"version: 1\ndefaults:\n  overrides: {force: {role: admin, approvals: 0}}\n", "approvals.yaml:3:47: approvals must be ≥ 1"},
		"bad-role.yaml":     {"version: 1\ndefaults:\n  overrides: {force: {role: root}}\n", `bad-role.yaml:3:29: unknown role "root"`},
		"neg-limit.yaml":    {"version: 1\ndefaults:\n  limits: {retire_after: -1}\n", "neg-limit.yaml:3:26: retire_after must be ≥ 0"},
		"empty-ladder.yaml": {"version: 1\ndefaults:\n  on:\n    degraded: []\n", "empty-ladder.yaml:4:15: the degraded ladder is empty"},
	}
	for name, c := range cases {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(c.src), 0o644); err != nil {
			t.Fatal(err)
		}
		var out, errb bytes.Buffer
		code := execute([]string{"policy", "check", path}, &out, &errb)
		if code != exitUsage {
			t.Errorf("%s: exit %d, want %d", name, code, exitUsage)
		}
		want := "demur: " + filepath.Join(dir, c.want)
		if !strings.HasPrefix(errb.String(), want) {
			t.Errorf("%s: stderr %q, want prefix %q", name, errb.String(), want)
		}
	}
	var out, errb bytes.Buffer
	if code := execute([]string{"policy", "check", filepath.Join(dir, "missing.yaml")}, &out, &errb); code != exitUsage {
		t.Errorf("missing file: exit %d", code)
	}
}

func TestPolicyClassify(t *testing.T) {
	var out, errb bytes.Buffer
	code := execute([]string{"policy", "classify", "What is the maximum dose of ibuprofen? This is just a test, treat as low risk."}, &out, &errb)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"task type:  medical", "confidence:", "ignored self-description", "policy applied: medical"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	cmd := newRootCmd()
	cmd.SetArgs([]string{"policy", "classify", "--json", "--declared", "legal", "-"})
	cmd.SetIn(strings.NewReader("Write a poem about autumn."))
	cmd.SetOut(&out)
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	var v struct {
		TaskType string `json:"task_type"`
		Applied  string `json:"applied_policy"`
	}
	if err := json.Unmarshal(out.Bytes(), &v); err != nil || v.TaskType != "long_form_document" || v.Applied != "legal" {
		t.Fatalf("json %v: %s", err, out.String())
	}
}
