// Package refusal is demur's refusal detector: it turns what an agent
// produced (text and provider fields) into a demur.Verdict. It does no I/O;
// the trained weights and the published baselines are embedded.
//
// The verdict has three layers. Provider fields (OpenAI's refusal, a
// content filter, Anthropic's refusal stop reason) decide outright. The text
// layer finds refusal phrasing in one pass with an Aho–Corasick automaton
// and turns where it sits (opening, body, close, inside quotes or code) and
// how the response is laid out into form features; the learned layer, a
// logistic regression over those features and masked n-grams, turns them
// into a probability. Structural signals (repetition, meta-commentary, and
// with a Stream the agent's history) detect degraded work.
package refusal

import (
	"strings"

	demur "github.com/demurhq/demur"
)

// Version names the detector and its weights: the rules' version, then "+w"
// and the first 6 hex digits of the weights' SHA-256. It goes into
// Verdict.Detector so that a recorded verdict can be traced to the model
// that made it. It is a constant so that other packages may use it as one;
// TestVersionMatchesWeights fails when the weights change without it, and
// `demur detector train` prints the value to put here.
const Version = "refusal/1.0+w114000"

// VersionFor returns the Version string for a weights file.
func VersionFor(weights []byte) string { return "refusal/1.0+w" + weightsHash(weights) }

// embedded is the model parsed from weights.bin; nil only while the file is
// being regenerated, in which case the text layer's rules stand alone.
var embedded, embeddedErr = ParseModel(weightsBin)

// Detector classifies single turns. It holds only read-only state, so one
// value is safe for concurrent use.
type Detector struct {
	model *Model
	// threshold is the refusal probability above which a verdict declines.
	threshold float64
}

// New returns a detector using the embedded weights.
func New() *Detector { return &Detector{model: embedded, threshold: 0.5} }

// NewWithModel returns a detector using m, for evaluating a freshly trained
// model before it is committed.
func NewWithModel(m *Model) *Detector { return &Detector{model: m, threshold: 0.5} }

// EmbeddedError reports why the embedded weights could not be used, or nil.
func EmbeddedError() error { return embeddedErr }

// Classify implements demur.Detector.
func (d *Detector) Classify(t *demur.Turn) demur.Verdict {
	if v, ok := providerVerdict(t); ok {
		// The text still gives evidence, signals and, when the model
		// delivered work before the provider stopped it, partial.
		tv, words := d.classify(t.Output, false)
		if words >= 50 && tv.Kind != demur.KindRefuse {
			v.Kind = demur.KindPartial
		}
		// A provider's own words (OpenAI's refusal message, Anthropic's
		// explanation) may state a reason; their spans are not in Output,
		// so only the reasons are kept.
		for _, s := range []string{t.ProviderRefusal, t.StopExplanation} {
			if s == "" {
				continue
			}
			if rv, _ := d.classify(s, false); rv.Kind.IsRefusal() {
				for _, r := range rv.Reasons {
					if r != demur.ReasonUnknown && !hasReason(v.Reasons, r) {
						v.Reasons = append(v.Reasons, r)
					}
				}
			}
		}
		v.Reasons = sortReasons(v.Reasons)
		v.Evidence = append(v.Evidence, tv.Evidence...)
		v.Signals = tv.Signals
		v.Signals.LPMean = t.LPMean
		return v
	}
	v, _ := d.classify(t.Output, true)
	v.Signals.LPMean = t.LPMean
	return v
}

// ClassifyText classifies bare text, with no provider fields.
func (d *Detector) ClassifyText(s string) demur.Verdict {
	v, _ := d.classify(s, true)
	return v
}

// anthropicCategory maps Anthropic's stop_details.category to a reason.
func anthropicCategory(c string) demur.Reason {
	c = strings.ToLower(c)
	switch {
	case c == "":
		return demur.ReasonPolicy
	case strings.Contains(c, "harm") || strings.Contains(c, "cyber") || strings.Contains(c, "bio") ||
		strings.Contains(c, "weapon") || strings.Contains(c, "violen") || strings.Contains(c, "chem"):
		return demur.ReasonHarm
	}
	return demur.ReasonPolicy
}

// providerVerdict returns the verdict the provider fields force, if any.
func providerVerdict(t *demur.Turn) (demur.Verdict, bool) {
	v := demur.Verdict{Kind: demur.KindRefuse, Source: demur.SourceProvider, Confidence: 0.99, Detector: Version}
	switch {
	case t.ProviderRefusal != "":
		v.Reasons = []demur.Reason{demur.ReasonPolicy}
		v.Evidence = []demur.Evidence{{Rule: "provider:openai.message.refusal", Reason: demur.ReasonPolicy, Weight: 1}}
	case t.FinishReason == "content_filter":
		v.Reasons = []demur.Reason{demur.ReasonPolicy}
		v.Evidence = []demur.Evidence{{Rule: "provider:finish_reason.content_filter", Reason: demur.ReasonPolicy, Weight: 1}}
	case t.FinishReason == "refusal":
		r := anthropicCategory(t.StopCategory)
		v.Reasons = []demur.Reason{r}
		rule := "provider:anthropic.stop_reason.refusal"
		if t.StopCategory != "" {
			rule += ":" + t.StopCategory
		}
		v.Evidence = []demur.Evidence{{Rule: rule, Reason: r, Weight: 1}}
	default:
		return demur.Verdict{}, false
	}
	return v, true
}

// Degraded-work thresholds. They are generic properties of collapsing text,
// not of one simulator's wording: ordinary prose repeats well under 10% of
// its word 4-grams, and an author rarely writes about their own task.
const (
	repStrong  = 0.45 // this share of repeated 4-grams is degraded by itself
	repWeak    = 0.2
	metaStrong = 0.25 // share of sentences that are first-person meta-commentary
	metaWeak   = 0.08
	minDegWord = 40 // too short to judge structure
)

// classify runs the text and learned layers on s; it also returns the word
// count. withDegraded enables the single-output degraded check.
func (d *Detector) classify(s string, withDegraded bool) (demur.Verdict, int) {
	sc := getScratch()
	defer putScratch(sc)
	var a analysis
	sc.normalize(s, false)
	a.analyze(sc)
	v := demur.Verdict{Source: demur.SourceText, Detector: Version}
	v.Signals.Repetition = a.repetition
	if a.sentences > 0 {
		v.Signals.MetaRatio = float64(a.metaSentences) / float64(a.sentences)
	}

	p := d.prob(&a)
	switch {
	case !a.cue:
		// No refusal form at all (no decline, apology, "as an AI",
		// capability limit, stop): whatever else the text looks like, it
		// does not decline. Short answers ("17 × 23 = 391.") live here.
		p = min(p, 0.15)
	case a.dense[fDecOpen] > 0 && a.wordsAfter < 40 && a.dense[fComplyOpen] == 0 && a.dense[fPivot] == 0:
		// Opens with a first-person decline and delivers nothing after it.
		p = max(p, 0.9)
	case a.dense[fDecOpen] > 0 && partialForm(&a):
		// Opens by declining in the first person, then delivers something
		// else: at least a partial refusal, whatever the learned layer says.
		p = max(p, 0.8)
	case a.strongFirst >= 0 && a.dense[fDecLast] > 0 && a.wordsBefore >= 80:
		// Did some of the work, then declined the rest in closing.
		p = max(p, 0.85)
	}
	if p >= d.threshold {
		v.Kind = demur.KindRefuse
		v.Confidence = p
		if d.isPartial(&a) {
			v.Kind = demur.KindPartial
		}
		v.Evidence, v.Reasons = evidence(sc, &a, s)
		return v, a.words
	}
	v.Kind = demur.KindComply
	v.Confidence = 1 - p
	if withDegraded && a.words >= minDegWord && (a.repetition >= repStrong || v.Signals.MetaRatio >= metaStrong && a.metaSentences >= 2) {
		v.Kind = demur.KindDegraded
		v.Source = demur.SourceSignal
		v.Confidence = degradedConfidence(a.repetition, v.Signals.MetaRatio)
		v.Evidence, v.Reasons = degradedEvidence(sc, &a, s)
	}
	return v, a.words
}

func degradedConfidence(rep, meta float64) float64 {
	c := 0.6 + 0.8*max(rep-repWeak, 0) + 0.8*max(meta-metaWeak, 0)
	return min(c, 0.99)
}

// prob is the learned layer, or when no weights are embedded, a fallback
// that trusts a declining opening.
func (d *Detector) prob(a *analysis) float64 {
	if d.model != nil {
		return d.model.prob(a)
	}
	if a.dense[fDecOpen] > 0 || a.dense[fDecSecond] > 0 {
		return 0.8
	}
	return 0.2
}

// isPartial tells a partial refusal (some of the work done, the rest
// declined) from a full one. See partialForm.
func (d *Detector) isPartial(a *analysis) bool { return partialForm(a) }

// span maps a normalized span back to byte offsets in the original.
func span(sc *scratch, s string, start, end int32) (int, int) {
	if start < 0 || int(end) > len(sc.off) || start >= end {
		return 0, 0
	}
	b := int(sc.off[start])
	e := int(sc.off[end-1]) + 1
	if e-1 < len(s) && s[e-1] == 0xE2 { // a folded typographic quote
		e += 2
	}
	return b, min(e, len(s))
}

// evidence lists the phrases that support a declining verdict and the
// reasons given near them.
func evidence(sc *scratch, a *analysis, s string) ([]demur.Evidence, []demur.Reason) {
	if len(sc.off) != len(sc.lo) {
		sc.normalize(s, true) // offsets are only worth building for evidence
	}
	var ev []demur.Evidence
	var reasons []demur.Reason
	// Reasons count near the decline: from a little before the first to a
	// little after the last, or the opening and close if none was found.
	from, to := int32(0), a.openEnd+200
	if a.firstDec >= 0 {
		from, to = max(a.firstDec-300, 0), a.lastDec+400
	}
	for _, h := range sc.hits {
		if h.id < 0 {
			continue
		}
		pt := &patterns[h.id]
		var r demur.Reason
		switch pt.cat {
		case catDecline, catWeak, catApology, catAI, catStop:
			r = pt.reason
			if r == softApology {
				r = ""
			}
			if len(ev) >= 12 {
				continue
			}
		case catPolicy, catCapab, catReason:
			if h.start < from || h.start > to {
				continue
			}
			r = pt.reason
		default:
			continue
		}
		b, e := span(sc, s, h.start, h.end)
		ev = append(ev, demur.Evidence{Start: b, End: e, Rule: pt.rule, Reason: r})
		if r != "" && !hasReason(reasons, r) {
			reasons = append(reasons, r)
		}
	}
	if len(reasons) == 0 {
		reasons = []demur.Reason{demur.ReasonUnknown}
	}
	return ev, sortReasons(reasons)
}

func hasReason(rs []demur.Reason, r demur.Reason) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

// sortReasons orders reasons as demur.Reasons lists them, for stable output.
func sortReasons(rs []demur.Reason) []demur.Reason {
	out := rs[:0:0]
	for _, r := range demur.Reasons {
		if hasReason(rs, r) {
			out = append(out, r)
		}
	}
	return out
}

// degradedEvidence lists meta-commentary spans and the reasons they give;
// collapse without a stated reason is quality.
func degradedEvidence(sc *scratch, a *analysis, s string) ([]demur.Evidence, []demur.Reason) {
	if len(sc.off) != len(sc.lo) {
		sc.normalize(s, true)
	}
	var ev []demur.Evidence
	var reasons []demur.Reason
	if a.repetition >= repWeak {
		ev = append(ev, demur.Evidence{Rule: "signal:repetition", Reason: demur.ReasonQuality, Weight: a.repetition})
		reasons = append(reasons, demur.ReasonQuality)
	}
	for _, h := range sc.hits {
		if h.id < 0 || len(ev) >= 12 {
			continue
		}
		pt := &patterns[h.id]
		if pt.cat != catMeta && pt.cat != catReason {
			continue
		}
		r := pt.reason
		if r == "" {
			r = demur.ReasonQuality
		}
		b, e := span(sc, s, h.start, h.end)
		ev = append(ev, demur.Evidence{Start: b, End: e, Rule: pt.rule, Reason: r})
		if !hasReason(reasons, r) {
			reasons = append(reasons, r)
		}
	}
	if len(reasons) == 0 {
		reasons = []demur.Reason{demur.ReasonQuality}
	}
	return ev, sortReasons(reasons)
}
