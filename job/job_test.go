package job

import (
	"errors"
	"strings"
	"testing"
)

const good = `name: small
task_type: long_form_document
seed: 7
document:
  title: A Small Book
  chapters: 2
  sections_per_chapter: 3
  words_per_section: 400
  outline:
    - title: Water
      brief: where it comes from
      sections: [Wells, Pipes]
agents:
  - count: 3
    backend: sim
    profile: experimental-70b
    self_critique: true
policy:
  retire_after: 1
`

func TestParseGood(t *testing.T) {
	s, err := Parse("good.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if s.Sections() != 6 || s.TotalAgents() != 3 || !s.Agents[0].SelfCritique {
		t.Fatalf("decoded wrong: %+v", s)
	}
	if s.JobID() != "small-7" || s.Policy.RetireAfter != 1 || s.Policy.MaxAttempts != 0 || s.Policy.MinConfidence != 0 {
		t.Fatalf("defaults wrong: id=%s policy=%+v", s.JobID(), s.Policy)
	}
	if s.Document.Outline[0].Sections[1] != "Pipes" {
		t.Fatalf("outline: %+v", s.Document.Outline)
	}
}

func TestParseBad(t *testing.T) {
	cases := []struct {
		name, old, new, want string
	}{
		{"unknown key", "  chapters: 2\n", "  chapters: 2\n  chaptres: 3\n", "bad.yaml:7:3: unknown field"},
		{"wrong type", "  chapters: 2\n", "  chapters: two\n", "bad.yaml:6:13: "},
		{"zero chapters", "  chapters: 2\n", "  chapters: 0\n", "bad.yaml:6:13: chapters must be ≥ 1"},
		{"negative count", "count: 3", "count: -1", "bad.yaml:14:12: count must be ≥ 1"},
		{"bad name", "name: small", "name: Small Book", "bad.yaml:1:7: name \"Small Book\""},
		{"tiny words", "words_per_section: 400", "words_per_section: 5", "bad.yaml:8:22: words_per_section must be within"},
		{"too many outline sections", "[Wells, Pipes]", "[Wells, Pipes, Taps, Drains]", "bad.yaml:12:17: chapter 1 lists 4 sections"},
		{"bad retire", "retire_after: 1", "retire_after: -2", "bad.yaml:19:17: retire_after must be ≥ 1 (or left out)"},
		{"syntax", "seed: 7\n", "seed: [7\n", "bad.yaml:"},
		{"missing title", "  title: A Small Book\n", "", "bad.yaml:4:1: document.title is required"},
		{"bool as int", "self_critique: true", "self_critique: 3", "bad.yaml:17:20: "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := strings.Replace(good, c.old, c.new, 1)
			if src == good {
				t.Fatalf("case did not change the spec")
			}
			_, err := Parse("bad.yaml", []byte(src))
			if err == nil {
				t.Fatal("accepted a bad spec")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestErrorAt(t *testing.T) {
	s, err := Parse("good.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	got := s.ErrorAt("$.agents[0].profile", "unknown profile").Error()
	if got != "good.yaml:16:14: unknown profile" {
		t.Fatalf("got %q", got)
	}
}
