package job

import (
	"fmt"
	"net/url"
	"regexp"
	"time"
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
	if p.RetireAfter < 0 {
		bad("$.policy.retire_after", "retire_after must be ≥ 1 (or left out), got %d", p.RetireAfter)
	}
	if p.MaxAttempts < 0 {
		bad("$.policy.max_attempts", "max_attempts must be ≥ 1 (or left out), got %d", p.MaxAttempts)
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
		if g.Profile == "" && g.Model == "" {
			bad(at, "agents[%d].profile is required", i)
		}
		errs = append(errs, s.validateHTTP(at, g)...)
	}
	if n := s.TotalAgents(); n > MaxAgents {
		bad("$.agents", "%d agents exceeds the limit of %d", n, MaxAgents)
	}
	return errs
}

// validateHTTP checks the HTTP-backend and chaos fields of one group.
func (s *Spec) validateHTTP(at string, g AgentGroup) Errors {
	var errs Errors
	bad := func(path, format string, args ...any) { errs = append(errs, s.at(path, format, args...)) }
	http := g.Backend == "openai" || g.Backend == "anthropic"
	if !http {
		for _, f := range []struct {
			name string
			set  bool
		}{{"model", g.Model != ""}, {"base_url", g.BaseURL != ""}, {"api_key_env", g.APIKeyEnv != ""},
			{"api_key_file", g.APIKeyFile != ""}, {"timeout", g.Timeout != ""}, {"stream", g.Stream}} {
			if f.set {
				bad(at+"."+f.name, "%s applies to the openai and anthropic backends, not %q", f.name, g.Backend)
			}
		}
	}
	if g.BaseURL != "" {
		if u, err := url.Parse(g.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(at+".base_url", "base_url %q must be an http(s) URL", g.BaseURL)
		}
	}
	if g.APIKeyEnv != "" && !envRE.MatchString(g.APIKeyEnv) {
		bad(at+".api_key_env", "api_key_env %q must name an environment variable (the key itself never goes in a spec)", g.APIKeyEnv)
	}
	if g.MaxTokens < 0 {
		bad(at+".max_tokens", "max_tokens must be ≥ 0, got %d", g.MaxTokens)
	}
	if g.Retries < 0 || g.Retries > 100 {
		bad(at+".retries", "retries must be within 0–100, got %d", g.Retries)
	}
	if g.Timeout != "" {
		if d, err := time.ParseDuration(g.Timeout); err != nil || d <= 0 {
			bad(at+".timeout", "timeout %q must be a positive duration such as 90s", g.Timeout)
		}
	}
	if c := g.Chaos; c != nil {
		cat := at + ".chaos"
		if c.RefusalRate < 0 || c.RefusalRate > 1 {
			bad(cat+".refusal_rate", "refusal_rate must be within 0–1, got %g", c.RefusalRate)
		}
		if c.FaultRate < 0 || c.FaultRate > 1 {
			bad(cat+".fault_rate", "fault_rate must be within 0–1, got %g", c.FaultRate)
		}
		if c.RefusalRate >= 0 && c.FaultRate >= 0 && c.RefusalRate+c.FaultRate > 1 {
			bad(cat+".fault_rate", "refusal_rate + fault_rate must be ≤ 1, got %g", c.RefusalRate+c.FaultRate)
		}
		if c.Seed < 0 {
			bad(cat+".seed", "seed must be ≥ 0, got %d", c.Seed)
		}
		if c.AfterTokens < 0 {
			bad(cat+".after_tokens", "after_tokens must be ≥ 0, got %d", c.AfterTokens)
		}
		for j, e := range c.Schedule {
			if e.Turn < 1 {
				bad(fmt.Sprintf("%s.schedule[%d].turn", cat, j), "turn must be ≥ 1, got %d", e.Turn)
			}
			if e.Inject == "" {
				bad(fmt.Sprintf("%s.schedule[%d]", cat, j), "schedule entry needs inject")
			}
		}
		if c.RetryAfter != "" {
			if d, err := time.ParseDuration(c.RetryAfter); err != nil || d < 0 {
				bad(cat+".retry_after", "retry_after %q must be a duration such as 1s", c.RetryAfter)
			}
		}
	}
	return errs
}

var envRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
