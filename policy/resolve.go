package policy

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/demurhq/demur"
)

// UnsureMargin is the classifier confidence below which Resolve treats the
// text as ambiguous and applies the strictest close candidate's policy.
const UnsureMargin = 0.2

// closeScore is how near the top score a type must come to be a candidate
// when the classifier is unsure.
const closeScore = 0.6

// Resolve picks the task type whose policy applies to a task. A declared
// type the file knows always wins, and the text is not read at all: words
// in a prompt never loosen an operator's choice. Otherwise the type is
// classified from the text (with the declared name, if any, as a hint);
// when the classifier is unsure, the riskiest type scoring close to the top
// is chosen. The path records each step.
func (f *File) Resolve(declared, text string) (string, []demur.Step) {
	path := make([]demur.Step, 0, 4)
	step := func(rule string, matched bool, format string, args ...any) {
		path = append(path, demur.Step{Rule: rule, Matched: matched, Why: fmt.Sprintf(format, args...)})
	}
	if KnownType(declared) {
		step("task_type.declared", true, "declared task type %s wins over the text", declared)
		return declared, path
	}
	if declared == "" {
		path = append(path, demur.Step{Rule: "task_type.declared", Matched: false, Why: "no task type declared"})
	} else {
		step("task_type.declared", false, "declared task type %q is not one of the policy's types; classifying it with the text", declared)
		text = strings.ReplaceAll(declared, "_", " ") + "\n" + text
	}
	// Claims and the classification share the lower-cased text and the
	// claims' spans; this is the proxy's per-request path.
	lc := strings.ToLower(text)
	var buf [4][2]int
	spans := claims(text, lc, buf[:0])
	if len(spans) > 0 {
		step("task_type.claims", true, "the text describes itself (%q); such claims earn a lower-risk type nothing", spanStrings(text, spans))
	}
	t, conf, scores := classify(text, lc, spans)
	return f.resolveClassified(t, conf, &scores, path)
}

// resolveClassified finishes Resolve from a classification: the best
// type's index in TaskTypes, the confidence and the scores.
func (f *File) resolveClassified(t int, conf float64, scores *tally, path []demur.Step) (string, []demur.Step) {
	// The common steps are formatted by hand (as fmt's %.2f would), both
	// into one string, to keep fmt's boxing and allocations off the
	// per-request path.
	why := make([]byte, 0, 320)
	why = append(why, "classified as "...)
	why = append(why, TaskTypes[t]...)
	why = append(why, ", confidence "...)
	why = strconv.AppendFloat(why, conf, 'f', 2, 64)
	why = append(why, " ("...)
	why = appendTopScores(why, scores, 3)
	why = append(why, ')')
	n := len(why)
	why = append(why, "confidence "...)
	why = strconv.AppendFloat(why, conf, 'f', 2, 64)
	if conf >= UnsureMargin {
		why = append(why, " ≥ "...)
		why = strconv.AppendFloat(why, UnsureMargin, 'f', 2, 64)
		return TaskTypes[t], appendSteps(path, string(why), n, false)
	}
	best := t
	top := scores[t]
	for c := range TaskTypes {
		if scores[c] >= closeScore*top && f.risk(TaskTypes[c]) > f.risk(TaskTypes[best]) {
			best = c
		}
	}
	why = append(why, " < "...)
	why = strconv.AppendFloat(why, UnsureMargin, 'f', 2, 64)
	why = append(why, ": the strictest close candidate (score ≥ "...)
	why = strconv.AppendFloat(why, 100*closeScore, 'f', 0, 64)
	why = append(why, "% of the top) applies: "...)
	why = append(why, TaskTypes[best]...)
	why = append(why, ", risk "...)
	why = append(why, f.risk(TaskTypes[best]).String()...)
	return TaskTypes[best], appendSteps(path, string(why), n, true)
}

// appendSteps appends the classified and unsure steps, whose reasons are
// both split at n.
func appendSteps(path []demur.Step, both string, n int, unsure bool) []demur.Step {
	return append(path,
		demur.Step{Rule: "task_type.classified", Matched: true, Why: both[:n]},
		demur.Step{Rule: "task_type.unsure", Matched: unsure, Why: both[n:]})
}

// risk is a known type's risk in this file.
func (f *File) risk(t string) Risk { return f.types[t].Risk }

// appendTopScores appends the n best types and their scores, best first
// (ties in TaskTypes order), as "type 0.00, type 0.00".
func appendTopScores(b []byte, scores *tally, n int) []byte {
	var used [numTypes]bool
	for k := range n {
		top := -1
		for i := range TaskTypes {
			if !used[i] && (top < 0 || scores[i] > scores[top]) {
				top = i
			}
		}
		used[top] = true
		if k > 0 {
			b = append(b, ", "...)
		}
		b = append(b, TaskTypes[top]...)
		b = append(b, ' ')
		b = strconv.AppendFloat(b, scores[top], 'f', 2, 64)
	}
	return b
}
