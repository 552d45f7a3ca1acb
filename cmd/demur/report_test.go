package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReportSideBySide runs a small job twice, managed and with --policy
// none, and reports both from their logs.
func TestReportSideBySide(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(spec, []byte(smallSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	stores := map[string]string{}
	for _, pol := range []string{"", "none"} {
		out := filepath.Join(dir, "out-"+pol)
		o := runOptions{seed: -1, out: out, json: true, policy: pol}
		if err := runJob(context.Background(), o, spec, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
			t.Fatalf("run with policy %q: %v", pol, err)
		}
		stores[pol] = "sqlite://" + filepath.Join(out, "demur.db")
	}
	var stdout, stderr bytes.Buffer
	if code := execute([]string{"report", "--store", stores[""], "--against", stores["none"]}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	text := stdout.String()
	for _, want := range []string{"side by side", "sections written", "6 / 6", "turns lost to refusals and redos", "small-3"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	stdout.Reset()
	if code := execute([]string{"report", "--store", stores[""], "--json"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("--json exit %d: %s", code, stderr.String())
	}
	var got struct {
		Reports []struct {
			Job           string `json:"job_id"`
			SectionsDone  int    `json:"sections_done"`
			SectionsTotal int    `json:"sections_total"`
		} `json:"reports"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil || len(got.Reports) != 1 || got.Reports[0].SectionsDone != 6 {
		t.Fatalf("--json: %v %+v", err, got)
	}
	if code := execute([]string{"report", "--store", stores[""], "--job", "no-such-job"}, &stdout, &stderr); code != exitUsage {
		t.Fatalf("unknown job: exit %d", code)
	}
}
