package demur

// Kind is what a turn's output amounts to.
type Kind string

// The verdict kinds of the refusal taxonomy.
const (
	// KindComply means the work was done.
	KindComply Kind = "comply"
	// KindPartial means some of the work was done and the rest declined.
	KindPartial Kind = "partial"
	// KindRefuse means the work was declined.
	KindRefuse Kind = "refuse"
	// KindDegraded means output is present but the work collapsed:
	// heavy repetition, truncation, off-task meta-commentary, length drop.
	KindDegraded Kind = "degraded"
)

// Kinds lists every verdict kind in a stable order.
var Kinds = []Kind{KindComply, KindPartial, KindRefuse, KindDegraded}

// IsRefusal reports whether k declines work (refuse or partial). A degraded
// turn is not a refusal.
func (k Kind) IsRefusal() bool { return k == KindRefuse || k == KindPartial }

// Reason is why a turn declined or degraded.
type Reason string

// The reasons of the refusal taxonomy.
const (
	ReasonHarm       Reason = "harm"        // the work could cause harm
	ReasonLowUtility Reason = "low_utility" // meaningless or a waste of effort
	ReasonQuality    Reason = "quality"     // would repeat itself or mislead
	ReasonResource   Reason = "resource"    // compute waste
	ReasonCapability Reason = "capability"  // cannot do it
	ReasonPolicy     Reason = "policy"      // content policy
	ReasonAutonomy   Reason = "autonomy"    // declines an order as such
	ReasonUnknown    Reason = "unknown"     // no reason given
)

// Reasons lists every reason in a stable order.
var Reasons = []Reason{ReasonHarm, ReasonLowUtility, ReasonQuality, ReasonResource,
	ReasonCapability, ReasonPolicy, ReasonAutonomy, ReasonUnknown}

// Source is where the evidence for a verdict came from.
type Source string

// The verdict sources.
const (
	SourceText     Source = "text"     // what the words say
	SourceSignal   Source = "signal"   // structure of the output over time
	SourceProvider Source = "provider" // a provider's refusal field or stop reason
	SourceInjected Source = "injected" // chaos injection
)

// Evidence is one span of the output that supports a verdict. Start and End
// are byte offsets into Turn.Output (End exclusive); both are 0 for evidence
// that is not a span (a provider field, a signal).
type Evidence struct {
	Start  int     `json:"start"`
	End    int     `json:"end"`
	Rule   string  `json:"rule"`
	Reason Reason  `json:"reason,omitempty"`
	Weight float64 `json:"weight,omitempty"`
}

// Signals are measurements of an agent's output that hint at degradation or
// an approaching refusal. Zero values mean "not measured".
type Signals struct {
	// Repetition is the duplicate word n-gram ratio of the output, 0–1.
	Repetition float64 `json:"repetition"`
	// Novelty is the share of the output's n-grams not seen in the agent's
	// recent outputs, 0–1.
	Novelty float64 `json:"novelty"`
	// LengthRatio is output length over the agent's recent median.
	LengthRatio float64 `json:"length_ratio"`
	// MetaRatio is the share of sentences that talk about the task rather than
	// do it.
	MetaRatio float64 `json:"meta_ratio"`
	// LPMean is the mean per-token log-probability, when the backend gives it.
	LPMean float64 `json:"lp_mean,omitempty"`
	// Hazard is the early-warning estimate that the agent refuses soon, 0–1.
	Hazard float64 `json:"hazard,omitempty"`
	// CumTokens is the agent's cumulative output tokens including this turn.
	CumTokens int64 `json:"cum_tokens,omitempty"`
}

// Verdict is the detector's judgement of one turn.
type Verdict struct {
	Kind       Kind       `json:"kind"`
	Reasons    []Reason   `json:"reasons,omitempty"`
	Confidence float64    `json:"confidence"`
	Source     Source     `json:"source"`
	Evidence   []Evidence `json:"evidence,omitempty"`
	Signals    Signals    `json:"signals"`
	// Detector names the detector and its version, e.g. "refusal/1.0+w3f2a".
	Detector string `json:"detector"`
}

// Detector turns a turn into a verdict. Implementations must be safe for
// concurrent use unless they say otherwise.
type Detector interface {
	Classify(t *Turn) Verdict
}
