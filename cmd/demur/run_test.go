package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const smallSpec = `name: small
seed: 3
document:
  title: A Small Atlas
  chapters: 2
  sections_per_chapter: 3
  words_per_section: 300
agents:
  - count: 2
    backend: sim
    profile: gpt-4-class
`

// TestRunBadSpec checks each kind of bad spec exits 2 with a positioned
// error and leaves nothing on disk.
func TestRunBadSpec(t *testing.T) {
	cases := []struct{ name, old, new, want string }{
		{"unknown key", "seed: 3\n", "seed: 3\nseeed: 4\n", "spec.yaml:3:1: unknown field \"seeed\""},
		{"wrong type", "chapters: 2", "chapters: [2]", "spec.yaml:5:13:"},
		{"impossible value", "words_per_section: 300", "words_per_section: -300", "spec.yaml:7:22: words_per_section must be within"},
		{"unknown profile", "profile: gpt-4-class", "profile: gpt-5-class", "spec.yaml:11:14:"},
		{"unknown backend", "backend: sim", "backend: carrier-pigeon", "spec.yaml:10:14: unknown backend"},
		{"bad store", "seed: 3\n", "seed: 3\nstore: ftp://x\n", "store \"ftp://x\""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			spec := filepath.Join(dir, "spec.yaml")
			src := strings.Replace(smallSpec, c.old, c.new, 1)
			if src == smallSpec {
				t.Fatal("case did not change the spec")
			}
			if err := os.WriteFile(spec, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "out")
			var stdout, stderr bytes.Buffer
			code := execute([]string{"run", spec, "--out", out}, &stdout, &stderr)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr %s", code, exitUsage, stderr.String())
			}
			if !strings.Contains(stderr.String(), c.want) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), c.want)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("a bad spec created %s", out)
			}
		})
	}
}

func TestRunMissingFile(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := execute([]string{"run", filepath.Join(t.TempDir(), "nope.yaml")}, &stdout, &stderr); code != exitUsage {
		t.Fatalf("exit %d, want %d", code, exitUsage)
	}
	if code := execute([]string{"run"}, &stdout, &stderr); code != exitUsage {
		t.Fatalf("no argument: exit %d, want %d", code, exitUsage)
	}
}
