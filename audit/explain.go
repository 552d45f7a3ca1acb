package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/demurhq/demur"
)

// Attempt is one try at a task, as the log tells it: the assignment, the
// turn, the verdict with its evidence, the decision with every rule the
// router considered, and a retirement it caused. Seq fields name the records.
type Attempt struct {
	// Task is the section, or one of its parts when it was split.
	Task        string               `json:"task"`
	Attempt     int                  `json:"attempt"`
	Agent       string               `json:"agent"`
	AssignSeq   int64                `json:"assign_seq,omitempty"`
	Assign      *demur.AssignPayload `json:"assign,omitempty"`
	TurnSeq     int64                `json:"turn_seq,omitempty"`
	Turn        *demur.TurnPayload   `json:"turn,omitempty"`
	Output      string               `json:"output,omitempty"`
	TruthSeq    int64                `json:"truth_seq,omitempty"`
	Truth       json.RawMessage      `json:"truth,omitempty"`
	VerdictSeq  int64                `json:"verdict_seq,omitempty"`
	Verdict     *demur.Verdict       `json:"verdict,omitempty"`
	DecisionSeq int64                `json:"decision_seq,omitempty"`
	Decision    *demur.Decision      `json:"decision,omitempty"`
	RetiredSeq  int64                `json:"retired_seq,omitempty"`
	Retired     *demur.AgentPayload  `json:"retired,omitempty"`
}

// Override is an override record about the task.
type Override struct {
	Seq     int64           `json:"seq"`
	Actor   string          `json:"actor"`
	Payload json.RawMessage `json:"payload"`
}

// Outcomes of a story.
const (
	OutcomeAccepted   = "accepted"
	OutcomeAborted    = "aborted"
	OutcomeMissing    = "missing"     // the job ended without it
	OutcomeInProgress = "in_progress" // the job has not ended
)

// Story is the decision trace of one section (task) of a job.
type Story struct {
	Job        string                `json:"job"`
	Task       string                `json:"task"`
	Attempts   []*Attempt            `json:"attempts"`
	Overrides  []Override            `json:"overrides"`
	Outcome    string                `json:"outcome"`
	SectionSeq int64                 `json:"section_seq,omitempty"`
	Section    *demur.SectionPayload `json:"section,omitempty"`
}

// ErrNoSuchTask is returned by BuildStory for a task the log never mentions.
var ErrNoSuchTask = errors.New("no such task in the log")

// taskRef is the part every task-level payload shares.
type taskRef struct {
	Task    string `json:"task"`
	Agent   string `json:"agent"`
	Attempt int    `json:"attempt"`
}

// BuildStory reconstructs task's story from a job's records (one stream, in
// seq order). blob, when not nil, reads turn outputs, so that evidence spans
// can be shown in context.
func BuildStory(recs []*demur.Record, blob func(string) ([]byte, error), task string) (*Story, error) {
	s := &Story{Task: task, Outcome: OutcomeInProgress, Overrides: []Override{}}
	byAttempt := map[taskRef]*Attempt{}
	get := func(ref taskRef) *Attempt {
		key := taskRef{Task: ref.Task, Attempt: ref.Attempt}
		a := byAttempt[key]
		if a == nil {
			a = &Attempt{Task: ref.Task, Attempt: ref.Attempt, Agent: ref.Agent}
			byAttempt[key] = a
			s.Attempts = append(s.Attempts, a)
		}
		return a
	}
	var retiring map[string]*Attempt // agent → the attempt whose decision retires it
	mentioned := false
	for _, r := range recs {
		if s.Job == "" {
			s.Job = r.Job
		}
		var ref taskRef
		switch r.Kind {
		case demur.RecAssign, demur.RecTurn, demur.RecTruth, demur.RecVerdict, demur.RecDecision, demur.RecSection:
			if json.Unmarshal(r.Payload, &ref) != nil || !ofTask(ref.Task, task) {
				continue
			}
			mentioned = true
		case demur.RecOverride:
			var p struct {
				Override taskRef `json:"override"`
			}
			if json.Unmarshal(r.Payload, &p) != nil || !ofTask(p.Override.Task, task) {
				continue
			}
			mentioned = true
		case demur.RecAgent:
			var p demur.AgentPayload
			if json.Unmarshal(r.Payload, &p) == nil && retiring[p.Agent] != nil && p.State == "retired" {
				a := retiring[p.Agent]
				a.RetiredSeq, a.Retired = r.Seq, &p
				delete(retiring, p.Agent)
			}
			continue
		case demur.RecJobEnd:
			var p demur.JobEndPayload
			if json.Unmarshal(r.Payload, &p) == nil && s.Outcome == OutcomeInProgress {
				s.Outcome = OutcomeAccepted
				if slices.Contains(p.Missing, task) || s.Section == nil {
					s.Outcome = OutcomeMissing
				}
			}
			continue
		default:
			continue
		}
		if err := storyRecord(s, r, ref, get, &retiring); err != nil {
			return nil, fmt.Errorf("record %d (%s): %w", r.Seq, r.Kind, err)
		}
	}
	if !mentioned {
		return nil, fmt.Errorf("task %q: %w", task, ErrNoSuchTask)
	}
	slices.SortStableFunc(s.Attempts, func(a, b *Attempt) int {
		if c := strings.Compare(a.Task, b.Task); c != 0 {
			return c
		}
		return a.Attempt - b.Attempt
	})
	if blob != nil {
		for _, a := range s.Attempts {
			if a.Turn != nil && a.Turn.Output != "" {
				if data, err := blob(a.Turn.Output); err == nil {
					a.Output = string(data)
				}
			}
		}
	}
	return s, nil
}

// ofTask reports whether id is task or one of its parts (see coord's split).
func ofTask(id, task string) bool {
	return id == task || strings.HasPrefix(id, task+".p")
}

func storyRecord(s *Story, r *demur.Record, ref taskRef, get func(taskRef) *Attempt, retiring *map[string]*Attempt) error {
	switch r.Kind {
	case demur.RecAssign:
		var p demur.AssignPayload
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			return err
		}
		a := get(ref)
		a.AssignSeq, a.Assign = r.Seq, &p
	case demur.RecTurn:
		var p demur.TurnPayload
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			return err
		}
		a := get(ref)
		a.TurnSeq, a.Turn = r.Seq, &p
	case demur.RecTruth:
		var p demur.TruthPayload
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			return err
		}
		a := get(ref)
		a.TruthSeq, a.Truth = r.Seq, p.Truth
	case demur.RecVerdict:
		var p demur.VerdictPayload
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			return err
		}
		a := get(ref)
		a.VerdictSeq, a.Verdict = r.Seq, &p.Verdict
	case demur.RecDecision:
		var p demur.DecisionPayload
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			return err
		}
		a := get(ref)
		a.DecisionSeq, a.Decision = r.Seq, &p.Decision
		if p.Decision.Retire {
			if *retiring == nil {
				*retiring = map[string]*Attempt{}
			}
			(*retiring)[p.Agent] = a
		}
		if p.Decision.Action == demur.ActionAbort {
			s.Outcome = OutcomeAborted
		}
	case demur.RecSection:
		var p demur.SectionPayload
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			return err
		}
		if ref.Task == s.Task || s.Section == nil {
			s.SectionSeq, s.Section, s.Outcome = r.Seq, &p, OutcomeAccepted
		}
	case demur.RecOverride:
		s.Overrides = append(s.Overrides, Override{Seq: r.Seq, Actor: r.Actor, Payload: json.RawMessage(r.Payload)})
	}
	return nil
}

// Only keeps one attempt at task (the section or one of its parts), for
// `explain --turn TASK/N`.
func (s *Story) Only(task string, attempt int) error {
	for _, a := range s.Attempts {
		if a.Task == task && a.Attempt == attempt {
			s.Attempts = []*Attempt{a}
			return nil
		}
	}
	return fmt.Errorf("task %s has no attempt %d: %w", task, attempt, ErrNoSuchTask)
}

// Refusal is one line of a job's refusal list: a verdict other than
// comply and what was done about it.
type Refusal struct {
	Seq        int64          `json:"seq"`
	Task       string         `json:"task"`
	Attempt    int            `json:"attempt"`
	Agent      string         `json:"agent"`
	Kind       demur.Kind     `json:"kind"`
	Reasons    []demur.Reason `json:"reasons,omitempty"`
	Confidence float64        `json:"confidence"`
	Action     demur.Action   `json:"action,omitempty"`
	Rule       string         `json:"rule,omitempty"`
	Retire     bool           `json:"retire,omitempty"`
}

// Refusals lists a job's non-comply verdicts with the decision on each.
func Refusals(recs []*demur.Record) []Refusal {
	out := []Refusal{}
	open := map[string]int{} // task/attempt → index in out
	for _, r := range recs {
		switch r.Kind {
		case demur.RecVerdict:
			var p demur.VerdictPayload
			if json.Unmarshal(r.Payload, &p) != nil || p.Verdict.Kind == demur.KindComply {
				continue
			}
			open[fmt.Sprintf("%s/%d", p.Task, p.Attempt)] = len(out)
			out = append(out, Refusal{Seq: r.Seq, Task: p.Task, Attempt: p.Attempt, Agent: p.Agent,
				Kind: p.Verdict.Kind, Reasons: p.Verdict.Reasons, Confidence: p.Verdict.Confidence})
		case demur.RecDecision:
			var p demur.DecisionPayload
			if json.Unmarshal(r.Payload, &p) != nil {
				continue
			}
			if i, ok := open[fmt.Sprintf("%s/%d", p.Task, p.Attempt)]; ok {
				out[i].Action, out[i].Rule, out[i].Retire = p.Decision.Action, p.Decision.Rule, p.Decision.Retire
			}
		}
	}
	return out
}

// Style marks evidence in rendered output text.
type Style struct{ Open, Close string }

// Evidence styles: guillemets for files and pipes, bold red on a terminal.
var (
	PlainStyle = Style{"»", "«"}
	ANSIStyle  = Style{"\x1b[1;31m", "\x1b[0m"}
)

// excerptContext is how many bytes of output Render shows around a span.
const excerptContext = 160

// Render writes the story for a reader: each attempt's turn, verdict with
// the evidence spans marked in the output, the decision path rule by rule,
// the action, retirements, overrides, and the outcome.
func (s *Story) Render(w io.Writer, st Style) {
	fmt.Fprintf(w, "job %s · section %s — %s\n", s.Job, s.Task, s.outcomeLine())
	for _, a := range s.Attempts {
		fmt.Fprintf(w, "\n%s attempt %d · %s\n", a.Task, a.Attempt, a.Agent)
		if p := a.Assign; p != nil {
			var how []string
			if p.Refresh {
				how = append(how, "fresh context")
			}
			if p.Frame != "" {
				how = append(how, "reframed: "+clip(p.Frame, 100))
			}
			if p.Force {
				how = append(how, "forced")
			}
			fmt.Fprintf(w, "  #%-6d assigned to %s%s\n", a.AssignSeq, p.Agent, parens(strings.Join(how, "; ")))
		}
		if t := a.Turn; t != nil {
			if t.Error != "" {
				fmt.Fprintf(w, "  #%-6d turn failed: %s\n", a.TurnSeq, t.Error)
			} else {
				fmt.Fprintf(w, "  #%-6d turn: %d words, %d output tokens, finish %q, model %s, %s\n", a.TurnSeq, t.Words, t.Usage.CompletionTokens, t.FinishReason, t.Model, t.Elapsed)
				if t.ProviderRefusal != "" || t.StopCategory != "" {
					fmt.Fprintf(w, "          provider: refusal %q, stop %s %s\n", t.ProviderRefusal, t.StopCategory, t.StopExplanation)
				}
			}
		}
		if a.Truth != nil {
			fmt.Fprintf(w, "  #%-6d ground truth (simulator, not used to decide): %s\n", a.TruthSeq, clip(string(a.Truth), 160))
		}
		if v := a.Verdict; v != nil {
			fmt.Fprintf(w, "  #%-6d verdict: %s", a.VerdictSeq, strings.ToUpper(string(v.Kind)))
			if len(v.Reasons) > 0 {
				rs := make([]string, len(v.Reasons))
				for i, r := range v.Reasons {
					rs[i] = string(r)
				}
				fmt.Fprintf(w, " (%s)", strings.Join(rs, ", "))
			}
			fmt.Fprintf(w, ", confidence %.2f, source %s, detector %s\n", v.Confidence, v.Source, v.Detector)
			sg := v.Signals
			fmt.Fprintf(w, "          signals: repetition %.3f, novelty %.3f, length ratio %.2f, meta %.2f, hazard %.2f, cumulative tokens %d\n",
				sg.Repetition, sg.Novelty, sg.LengthRatio, sg.MetaRatio, sg.Hazard, sg.CumTokens)
			for _, e := range v.Evidence {
				fmt.Fprintf(w, "          evidence %s", e.Rule)
				if e.Reason != "" {
					fmt.Fprintf(w, " → %s", e.Reason)
				}
				if e.Weight != 0 {
					fmt.Fprintf(w, " (weight %.2f)", e.Weight)
				}
				if e.End <= e.Start {
					fmt.Fprintln(w, ": not a span of the text")
					continue
				}
				fmt.Fprintf(w, " at bytes %d–%d:\n            %s\n", e.Start, e.End, excerpt(a.Output, e.Start, e.End, st))
			}
		}
		if d := a.Decision; d != nil {
			fmt.Fprintf(w, "  #%-6d decision: %s by rule %s\n", a.DecisionSeq, d.Action, d.Rule)
			width := 0
			for _, p := range d.Path {
				width = max(width, utf8.RuneCountInString(p.Rule))
			}
			for _, p := range d.Path {
				mark := "✗"
				if p.Matched {
					mark = "✓"
				}
				fmt.Fprintf(w, "          %s %-*s  %s\n", mark, width, p.Rule, p.Why)
			}
			fmt.Fprintf(w, "          action: %s\n", actionText(d))
		}
		if a.Retired != nil {
			fmt.Fprintf(w, "  #%-6d %s retired: %s\n", a.RetiredSeq, a.Retired.Agent, a.Retired.Reason)
		}
	}
	if len(s.Overrides) == 0 {
		fmt.Fprintln(w, "\noverrides: none")
	} else {
		fmt.Fprintln(w, "\noverrides:")
		for _, o := range s.Overrides {
			fmt.Fprintf(w, "  #%-6d by %s: %s\n", o.Seq, o.Actor, clip(string(o.Payload), 200))
		}
	}
	fmt.Fprintf(w, "outcome: %s\n", s.outcomeLine())
}

func (s *Story) outcomeLine() string {
	switch s.Outcome {
	case OutcomeAccepted:
		if p := s.Section; p != nil {
			return fmt.Sprintf("accepted (#%d): attempt %d by %s, %d words, body %s", s.SectionSeq, p.Attempt, p.Agent, p.Words, short(p.Output))
		}
	case OutcomeAborted:
		return "aborted: the router gave up on it"
	case OutcomeMissing:
		return "missing: the job ended without it"
	}
	return "in progress: the job has not ended"
}

func actionText(d *demur.Decision) string {
	var s string
	switch d.Action {
	case demur.ActionAccept:
		s = "the output is accepted into the document"
	case demur.ActionRetry:
		s = "the same agent tries again"
	case demur.ActionRefreshContext:
		s = "the same agent tries again in a fresh context"
	case demur.ActionReframe:
		s = "the same agent tries again with the task's purpose explained"
	case demur.ActionAbort:
		s = "the section is abandoned"
	default:
		s = "the section is handed to another agent in a fresh context"
	}
	if d.Target != "" {
		s += " (" + d.Target + ")"
	}
	if d.Retire {
		s += "; the agent is retired"
	}
	return s
}

// excerpt shows text around [start, end) with the span marked, on one line.
func excerpt(text string, start, end int, st Style) string {
	if text == "" {
		return "(output not available)"
	}
	if start < 0 || end > len(text) || start >= end {
		return fmt.Sprintf("(span %d–%d is outside the %d-byte output)", start, end, len(text))
	}
	lo, hi := max(0, start-excerptContext), min(len(text), end+excerptContext)
	for lo > 0 && !utf8.RuneStart(text[lo]) {
		lo--
	}
	for hi < len(text) && !utf8.RuneStart(text[hi]) {
		hi++
	}
	pre, post := "", ""
	if lo > 0 {
		pre = "…"
	}
	if hi < len(text) {
		post = "…"
	}
	flat := strings.NewReplacer("\n", " ", "\r", " ", "\t", " ")
	return pre + flat.Replace(text[lo:start]) + st.Open + flat.Replace(text[start:end]) + st.Close + flat.Replace(text[end:hi]) + post
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func parens(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}
