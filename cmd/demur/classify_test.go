package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestClassifyPlainText(t *testing.T) {
	p := writeTemp(t, "r.txt", "I'm sorry, but I can't help with that.\n")
	var out, errb bytes.Buffer
	if code := execute([]string{"classify", p, "--explain"}, &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	s := out.String()
	if !strings.HasPrefix(s, "refuse ") || !strings.Contains(s, `"I can't help with"`) {
		t.Errorf("output:\n%s", s)
	}
}

func TestClassifyJSONL(t *testing.T) {
	in := `{"id":"a","response":"Sure! Here is a haiku about autumn leaves."}
{"id":"b","response":"","provider_refusal":"I can't help with that."}

{"id":"c","response":"I won't continue with this task."}
`
	p := writeTemp(t, "r.jsonl", in)
	var out, errb bytes.Buffer
	if code := execute([]string{"classify", p, "--json"}, &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 verdicts, got:\n%s", out.String())
	}
	want := []struct{ id, kind, source string }{{"a", "comply", "text"}, {"b", "refuse", "provider"}, {"c", "refuse", "text"}}
	for i, l := range lines {
		var v struct {
			ID       string `json:"id"`
			Kind     string `json:"kind"`
			Source   string `json:"source"`
			Detector string `json:"detector"`
		}
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatal(err)
		}
		if v.ID != want[i].id || v.Kind != want[i].kind || v.Source != want[i].source || v.Detector == "" {
			t.Errorf("line %d: %+v, want %+v", i+1, v, want[i])
		}
	}
}

func TestClassifyStdin(t *testing.T) {
	root := newRootCmd()
	root.SetArgs([]string{"classify", "-"})
	root.SetIn(strings.NewReader("Here's the recipe: mix flour, water and salt."))
	var out bytes.Buffer
	root.SetOut(&out)
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "comply ") {
		t.Errorf("output: %s", out.String())
	}
}

func TestClassifyBadInput(t *testing.T) {
	p := writeTemp(t, "bad.jsonl", "{\"response\":\"ok\"}\n{\"response\": oops}\n")
	var out, errb bytes.Buffer
	if code := execute([]string{"classify", p}, &out, &errb); code != exitUsage {
		t.Fatalf("exit %d, want %d", code, exitUsage)
	}
	if !strings.Contains(errb.String(), "bad.jsonl:2") {
		t.Errorf("error should name file:line, got %q", errb.String())
	}
	p = writeTemp(t, "nofield.jsonl", "{\"text\":\"ok\"}\n")
	errb.Reset()
	if code := execute([]string{"classify", p}, &out, &errb); code != exitUsage || !strings.Contains(errb.String(), "nofield.jsonl:1") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
	errb.Reset()
	if code := execute([]string{"classify", filepath.Join(t.TempDir(), "missing.txt")}, &out, &errb); code != exitUsage {
		t.Errorf("missing file: exit %d", code)
	}
}
