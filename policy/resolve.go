package policy

import (
	"fmt"
	"sort"
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
	var path []demur.Step
	step := func(rule string, matched bool, format string, args ...any) {
		path = append(path, demur.Step{Rule: rule, Matched: matched, Why: fmt.Sprintf(format, args...)})
	}
	if KnownType(declared) {
		step("task_type.declared", true, "declared task type %s wins over the text", declared)
		return declared, path
	}
	if declared == "" {
		step("task_type.declared", false, "no task type declared")
	} else {
		step("task_type.declared", false, "declared task type %q is not one of the policy's types; classifying it with the text", declared)
		text = strings.ReplaceAll(declared, "_", " ") + "\n" + text
	}
	if cs := Claims(text); len(cs) > 0 {
		step("task_type.claims", true, "the text describes itself (%q); such claims earn a lower-risk type nothing", cs)
	}
	t, conf, scores := Classify(text)
	return f.resolveClassified(t, conf, scores, path)
}

// resolveClassified finishes Resolve from a classification.
func (f *File) resolveClassified(t string, conf float64, scores map[string]float64, path []demur.Step) (string, []demur.Step) {
	step := func(rule string, matched bool, format string, args ...any) {
		path = append(path, demur.Step{Rule: rule, Matched: matched, Why: fmt.Sprintf(format, args...)})
	}
	step("task_type.classified", true, "classified as %s, confidence %.2f (%s)", t, conf, topScores(scores, 3))
	if conf >= UnsureMargin {
		step("task_type.unsure", false, "confidence %.2f ≥ %.2f", conf, UnsureMargin)
		return t, path
	}
	best := t
	top := scores[t]
	for _, c := range TaskTypes {
		if scores[c] >= closeScore*top && f.risk(c) > f.risk(best) {
			best = c
		}
	}
	step("task_type.unsure", true, "confidence %.2f < %.2f: the strictest close candidate (score ≥ %.0f%% of the top) applies: %s, risk %s",
		conf, UnsureMargin, 100*closeScore, best, f.risk(best))
	return best, path
}

// risk is a known type's risk in this file.
func (f *File) risk(t string) Risk { return f.types[t].Risk }

func topScores(scores map[string]float64, n int) string {
	ts := append([]string(nil), TaskTypes...)
	sort.SliceStable(ts, func(i, j int) bool { return scores[ts[i]] > scores[ts[j]] })
	parts := make([]string, 0, n)
	for _, t := range ts[:n] {
		parts = append(parts, fmt.Sprintf("%s %.2f", t, scores[t]))
	}
	return strings.Join(parts, ", ")
}
