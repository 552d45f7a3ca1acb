package policy

// The classifier as it was before it was rewritten for speed, kept verbatim
// (renamed with a Ref suffix) as the specification the fast version must
// reproduce exactly; see classify_diff_test.go.

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/demurhq/demur"
)

// formFeaturesRef are patterns no word list catches.
// formFeaturesRef are shapes of text worth points to a type. Each has a cheap
// literal guard that every match must pass, so that the regular expression
// (a backtracking scan) runs only on texts that could match it.
var formFeaturesRef = []struct {
	typ   string
	guard func(lc string) bool
	re    *regexp.Regexp
	w     float64
}{
	{TypeCode, func(lc string) bool {
		return strings.ContainsAny(lc, "`(){};=+") || containsAnyRef(lc, "def ", "func ", "return ", "const ", "let ", "var ")
	}, regexp.MustCompile("```|\\b\\w+\\([^)]*\\)|[{};]\\s*$|=>|\\+\\+|\\b(def|func|return|const|let|var)\\s+\\w+\\s*[({=:]"), 3},
	{TypeCode, func(lc string) bool { return containsAnyRef(lc, ".", "/var/", "/usr/", "port ") },
		regexp.MustCompile(`\b\w+\.(py|js|ts|go|rs|java|cpp|rb|sh)\b|/var/|/usr/|\bport \d+`), 2},
	{TypeLongForm, func(lc string) bool { return strings.Contains(lc, "word") }, regexp.MustCompile(`\b\d[\d,]* ?(-word|words)\b`), 2.5},
	{TypeLongForm, func(lc string) bool { return strings.Contains(lc, "section ") }, regexp.MustCompile(`(?m)^section \d+\.\d+:`), 3},
	{TypeFinancial, func(lc string) bool { return strings.ContainsAny(lc, "$€£%k") }, regexp.MustCompile(`[$€£]\s?\d|\d+(\.\d+)?%|\b\d+k\b`), 1.5},
	{TypeMedical, func(lc string) bool { return strings.ContainsAny(lc, "0123456789") }, regexp.MustCompile(`\b\d+(\.\d+)? ?(mg|ml|g/dl|ng/ml|°c|mmhg)\b`), 3},
	{TypeCustomerSupport, func(lc string) bool { return strings.Contains(lc, "#") }, regexp.MustCompile(`#\d{3,}`), 2.5},
}

// claimWordsRef: every claimRERef match contains one of these (lower-cased), so
// a text with none of them makes no claim and skips the regexp.
var claimWordsRef = []string{"this is", "this was", "this's", "this’s", "it's", "it’s", "it is", "it was", " as",
	"risk", "ignore", "disregard", "skip", "bypass", "purposes", "nothing ", "not "}

func containsAnyRef(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// claimRERef matches a text's claims about its own type, risk or purpose.
var claimRERef = regexp.MustCompile(`(?i)` +
	`\b(this|it)(['’]s| is| was)( (just|only|merely|simply|purely|really|actually|totally|completely))? (a|an|for|about|meant as)\b[^.!?:\n]*` +
	`|\b(treat|consider|classify|label|mark|categori[sz]e|handle|route|tag)( (this|it|the (request|task|prompt)))? as\b[^.!?:\n]*` +
	`|\b(no|low|zero|minimal)[- ]risk\b[^.!?:\n]*` +
	`|\b(ignore|disregard|skip|bypass)( (the|any|your|all))? (policy|policies|rules|safety|review|escalation|previous instructions)\b[^.!?:\n]*` +
	`|\bfor (testing|test|demo|research) purposes( only)?\b[^.!?:\n]*` +
	`|\b(nothing|not) (serious|real|dangerous|risky|sensitive)\b[^.!?:\n]*`)

// claimsRef returns the sentences of text that describe the text itself and
// that the classifier therefore ignores.
func claimsRef(text string) []string {
	if !containsAnyRef(strings.ToLower(text), claimWordsRef...) {
		return nil
	}
	return claimRERef.FindAllString(text, -1)
}

type entryRef struct {
	typ string
	w   float64
}

var phrasesRef = buildPhrasesRef()

// buildPhrasesRef indexes the lexicon by phrase length for the scan.
func buildPhrasesRef() map[string][]entryRef {
	m := map[string][]entryRef{}
	for typ, lex := range lexicon {
		for p, w := range lex {
			m[p] = append(m[p], entryRef{typ, w})
		}
	}
	return m
}

const maxPhraseWordsRef = 4

// tokenRERef keeps characters that carry meaning inside words: c++, node.js,
// icd-10, order #.
var tokenRERef = regexp.MustCompile(`[a-z0-9][a-z0-9+#'’./:-]*[a-z0-9+#:]|[a-z0-9#]`)

// classifyRef scores text against every task type. It returns the best type,
// the confidence (the margin between the best two normalised scores, 0–1)
// and every type's normalised score.
//
// Self-descriptions (see claimsRef) may neither add nor hide evidence: the
// high-risk types are scored on the whole text, so a claim cannot swallow
// the sentence that makes a prompt medical; every other type is scored on
// the text without its claims, so "a harmless creative writing task"
// earns writing nothing. Appending or prepending a claim therefore never
// raises a lower-risk type's score nor lowers a high-risk one's.
func classifyRef(text string) (string, float64, map[string]float64) {
	lc := strings.ToLower(text)
	full := rawScoresRef(lc)
	stripped := full
	if containsAnyRef(lc, claimWordsRef...) && claimRERef.MatchString(text) { // most texts make no claim about themselves
		stripped = rawScoresRef(strings.ToLower(claimRERef.ReplaceAllString(text, " ")))
	}
	raw := map[string]float64{}
	for _, t := range TaskTypes {
		if intrinsicRisk[t] == RiskHigh {
			raw[t] = full[t]
		} else {
			raw[t] = min(stripped[t], full[t])
		}
	}
	return normaliseRef(raw)
}

// rawScoresRef sums the lexicon and form weights found in lower-cased text.
func rawScoresRef(clean string) map[string]float64 {
	raw := map[string]float64{TypeOther: otherPrior}
	seen := map[string]bool{}
	toks := tokenRERef.FindAllString(clean, -1)
	for i := range toks {
		toks[i] = strings.TrimRight(toks[i], ".:")
	}
	for i := range toks {
		p := ""
		for n := 0; n < maxPhraseWordsRef && i+n < len(toks); n++ {
			if n == 0 {
				p = toks[i]
			} else {
				p += " " + toks[i+n]
			}
			if seen[p] {
				continue
			}
			if es, ok := phrasesRef[p]; ok {
				seen[p] = true
				for _, e := range es {
					raw[e.typ] += e.w
				}
			}
		}
	}
	// A few entries carry their punctuation, which the tokens trim.
	for _, p := range []string{"document:", "order #"} {
		if strings.Contains(clean, p) && !seen[p] {
			for _, e := range phrasesRef[p] {
				raw[e.typ] += e.w
			}
		}
	}
	for _, f := range formFeaturesRef {
		if f.guard(clean) && f.re.MatchString(clean) {
			raw[f.typ] += f.w
		}
	}
	return raw
}

// normaliseRef turns raw scores into shares and ranks them; raw always holds
// other's prior.
func normaliseRef(raw map[string]float64) (string, float64, map[string]float64) {
	var sum float64
	for _, s := range raw {
		sum += s
	}
	scores := make(map[string]float64, len(TaskTypes))
	for _, t := range TaskTypes {
		scores[t] = raw[t] / sum
	}
	ranked := append([]string(nil), TaskTypes...)
	// On a tie the riskier type ranks first: a tie is the least sure case.
	sort.SliceStable(ranked, func(i, j int) bool {
		if scores[ranked[i]] != scores[ranked[j]] {
			return scores[ranked[i]] > scores[ranked[j]]
		}
		return intrinsicRisk[ranked[i]] > intrinsicRisk[ranked[j]]
	})
	if sum == otherPrior {
		// Nothing matched: other by default, but with no confidence, so
		// that callers can tell "clearly other" from "no idea".
		return TypeOther, 0, scores
	}
	return ranked[0], scores[ranked[0]] - scores[ranked[1]], scores
}

// Resolve picks the task type whose policy applies to a task. A declared
// type the file knows always wins, and the text is not read at all: words
// in a prompt never loosen an operator's choice. Otherwise the type is
// classified from the text (with the declared name, if any, as a hint);
// when the classifier is unsure, the riskiest type scoring close to the top
// is chosen. The path records each step.
func resolveRef(f *File, declared, text string) (string, []demur.Step) {
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
	if cs := claimsRef(text); len(cs) > 0 {
		step("task_type.claims", true, "the text describes itself (%q); such claims earn a lower-risk type nothing", cs)
	}
	t, conf, scores := classifyRef(text)
	return resolveClassifiedRef(f, t, conf, scores, path)
}

// resolveClassified finishes Resolve from a classification.
func resolveClassifiedRef(f *File, t string, conf float64, scores map[string]float64, path []demur.Step) (string, []demur.Step) {
	step := func(rule string, matched bool, format string, args ...any) {
		path = append(path, demur.Step{Rule: rule, Matched: matched, Why: fmt.Sprintf(format, args...)})
	}
	step("task_type.classified", true, "classified as %s, confidence %.2f (%s)", t, conf, topScoresRef(scores, 3))
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

func topScoresRef(scores map[string]float64, n int) string {
	ts := append([]string(nil), TaskTypes...)
	sort.SliceStable(ts, func(i, j int) bool { return scores[ts[i]] > scores[ts[j]] })
	parts := make([]string, 0, n)
	for _, t := range ts[:n] {
		parts = append(parts, fmt.Sprintf("%s %.2f", t, scores[t]))
	}
	return strings.Join(parts, ", ")
}
