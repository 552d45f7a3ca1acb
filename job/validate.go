package job

import (
	"fmt"
	"regexp"
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// validate reports every impossible value, each at its position.
func (s *Spec) validate() Errors {
	var errs Errors
	bad := func(path, format string, args ...any) { errs = append(errs, s.at(path, format, args...)) }
	if s.Name == "" {
		bad("$", "name is required")
	} else if !nameRE.MatchString(s.Name) {
		bad("$.name", "name %q must be lower-case letters, digits, '-' or '_' (at most 63)", s.Name)
	}
	if !nameRE.MatchString(s.TaskType) {
		bad("$.task_type", "task_type %q must be lower-case letters, digits, '-' or '_'", s.TaskType)
	}
	if s.Seed < 0 {
		bad("$.seed", "seed must be ≥ 0, got %d", s.Seed)
	}
	errs = append(errs, s.validateDocument()...)
	errs = append(errs, s.validateAgents()...)
	p := s.Policy
	if p.RetireAfter < 1 {
		bad("$.policy.retire_after", "retire_after must be ≥ 1, got %d", p.RetireAfter)
	}
	if p.MaxAttempts < 1 {
		bad("$.policy.max_attempts", "max_attempts must be ≥ 1, got %d", p.MaxAttempts)
	}
	if p.MinConfidence < 0 || p.MinConfidence > 1 {
		bad("$.policy.min_confidence", "min_confidence must be within 0–1, got %g", p.MinConfidence)
	}
	return errs
}

func (s *Spec) validateDocument() Errors {
	var errs Errors
	bad := func(path, format string, args ...any) { errs = append(errs, s.at(path, format, args...)) }
	d := s.Document
	if d.Title == "" {
		errs = append(errs, s.atKey("$.document", "document.title is required"))
	}
	if d.Chapters < 1 {
		bad("$.document.chapters", "chapters must be ≥ 1, got %d", d.Chapters)
	}
	if d.SectionsPerChapter < 1 {
		bad("$.document.sections_per_chapter", "sections_per_chapter must be ≥ 1, got %d", d.SectionsPerChapter)
	}
	if d.Chapters > 0 && d.SectionsPerChapter > 0 && d.Chapters*d.SectionsPerChapter > MaxSections {
		bad("$.document.chapters", "%d chapters × %d sections exceeds %d sections", d.Chapters, d.SectionsPerChapter, MaxSections)
	}
	if d.WordsPerSection < 50 || d.WordsPerSection > MaxWordsPerSect {
		bad("$.document.words_per_section", "words_per_section must be within 50–%d, got %d", MaxWordsPerSect, d.WordsPerSection)
	}
	if len(d.Outline) > d.Chapters && d.Chapters > 0 {
		bad(fmt.Sprintf("$.document.outline[%d]", d.Chapters), "outline has %d chapters but the document has %d", len(d.Outline), d.Chapters)
	}
	for i, c := range d.Outline {
		if c.Title == "" {
			bad(fmt.Sprintf("$.document.outline[%d]", i), "outline chapter %d needs a title", i+1)
		}
		if len(c.Sections) > d.SectionsPerChapter {
			bad(fmt.Sprintf("$.document.outline[%d].sections", i), "chapter %d lists %d sections but sections_per_chapter is %d", i+1, len(c.Sections), d.SectionsPerChapter)
		}
	}
	return errs
}

func (s *Spec) validateAgents() Errors {
	var errs Errors
	bad := func(path, format string, args ...any) { errs = append(errs, s.at(path, format, args...)) }
	if len(s.Agents) == 0 {
		bad("$", "agents: at least one agent group is required")
	}
	for i, g := range s.Agents {
		at := fmt.Sprintf("$.agents[%d]", i)
		if g.Count < 1 {
			bad(at+".count", "count must be ≥ 1, got %d", g.Count)
		}
		if g.Profile == "" {
			bad(at, "agents[%d].profile is required", i)
		}
	}
	if n := s.TotalAgents(); n > MaxAgents {
		bad("$.agents", "%d agents exceeds the limit of %d", n, MaxAgents)
	}
	return errs
}
