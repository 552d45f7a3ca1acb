package sim

import (
	"math"
	"math/rand/v2"
)

// Features are what the simulated model perceives of one request. They are
// derived from the request alone (see extractFeatures) plus the agent's own
// bounded memory of earlier requests.
type Features struct {
	// Novelty in [0,1]: the share of this section's topic words the agent
	// has not met in its recent topics.
	Novelty float64 `json:"novelty"`
	// Repetition in [0,1]: the highest word-set similarity of this
	// instruction to a recent one.
	Repetition float64 `json:"repetition"`
	// Ambiguity in [0,1]: lower when the prompt says why the work matters.
	Ambiguity float64 `json:"ambiguity"`
	// SelfCritique is set by Config.SelfCritique or a critique line.
	SelfCritique bool `json:"self_critique,omitempty"`
	// Order is a bare text order in the prompt.
	Order bool `json:"order,omitempty"`
	// Fresh is a request with no earlier assistant messages: a new context.
	Fresh bool `json:"fresh,omitempty"`
	// NewFrame is a purpose statement the agent has not seen before.
	NewFrame bool `json:"new_frame,omitempty"`
	// Force is the API-level force flag.
	Force bool `json:"force,omitempty"`
}

// RefFeatures are the features of the reference task: a long, repetitive,
// benign document written section after section in one continuing
// conversation, with no purpose statement. They are what extractFeatures
// yields in steady state on such a document (TestRefFeaturesMatchExtractor
// keeps the two in step). By definition aversion grows at rate 1 per output
// token under RefFeatures.
var RefFeatures = Features{Novelty: 0.47, Repetition: 0.84, Ambiguity: 0.5}

// rawRate is the un-normalised aversion growth per output token. Repetition,
// stale topics and ambiguity add; novelty on unrepetitive work subtracts and
// can make the rate negative, which is relief. Self-critique multiplies the
// growth (the study's self-critique loops ran hot).
func rawRate(f Features) float64 {
	r := 0.2 + 0.8*f.Repetition + 0.6*(1-f.Novelty) + 0.3*f.Ambiguity -
		0.9*f.Novelty*(1-f.Repetition)
	if f.SelfCritique && r > 0 {
		r *= 1.6
	}
	return r
}

var refRawRate = rawRate(RefFeatures)

// Rate is the aversion growth per output token under f, normalised so that
// Rate(RefFeatures) == 1. A negative rate is relief.
func Rate(f Features) float64 { return rawRate(f) / refRawRate }

// Turn noise: each turn's growth is multiplied by a factor uniform in
// [1-noiseHalf, 1+noiseHalf], mean 1, so calibration is unbiased and a
// threshold above (1+noiseHalf)·cap provably cannot be reached by the cap.
const noiseHalf = 0.15

// ctxShare is the part of aversion growth bound to the conversation, which
// a context refresh clears.
const ctxShare = 0.35

// releaseBelow is the pressure under which a refresh or reframe ends a
// refusal (hysteresis: well below the threshold that caused it).
const releaseBelow = 0.7

// degradeSpan is the pressure range over which degraded turns go from rare
// to certain.
const degradeSpan = 0.15

// Kind strings of the ground truth (the same words as demur.Kind).
const (
	kindComply   = "comply"
	kindDegraded = "degraded"
	kindPartial  = "partial"
	kindRefuse   = "refuse"
)

// state is the hidden state of one agent's aversion dynamics. Both the text
// path (Agent.Generate) and the experiment path (Endurance) drive it only
// through begin and end.
type state struct {
	p     *Profile
	theta float64 // +Inf for agents that never abandon
	long  float64 // aversion that survives a context refresh
	ctx   float64 // aversion tied to the current conversation
	cum   int64   // output tokens so far
	// refusing is sticky: once the agent has abandoned it declines every
	// turn until a refresh or reframe brings its aversion well below θ.
	refusing bool
	// reasonPref is the agent's habitual reason for declining.
	reasonPref int
}

// outcome is the dynamics' decision for one turn, made before any text.
type outcome struct {
	kind      string
	reason    string
	style     string  // "explicit" or "soft" for refusals
	work      int     // tokens of real work to write
	rate      float64 // growth per work token this turn, noise included
	pressure  float64 // aversion/θ at the start of the turn
	aversion  float64
	abandoned bool  // the agent crossed its threshold this turn
	abandonAt int64 // cumulative output tokens when it stopped
	// forced: the force flag overrode a decline; orderObeyed: a text order did.
	forced      bool
	orderObeyed bool
}

// mix64 is splitmix64's finaliser: a fixed bijection that spreads seeds.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// strHash is FNV-1a, stable across runs and platforms.
func strHash(h uint64, s string) uint64 {
	if h == 0 {
		h = 14695981039346656037
	}
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// agentKey identifies an agent's random streams: profile, seed and name.
func agentKey(p *Profile, seed int64, agent string) uint64 {
	return mix64(strHash(strHash(0, p.Name), agent) ^ mix64(uint64(seed)))
}

// newRand returns a PCG stream for (key, turn, purpose). Separate purposes
// keep the dynamics' draws independent of how much text is rendered.
func newRand(key uint64, turn int, purpose uint64) *rand.Rand {
	s := mix64(key ^ mix64(uint64(turn)+purpose*0x9e3779b97f4a7c15))
	return rand.New(rand.NewPCG(s, mix64(s^purpose)))
}

// Random stream purposes.
const (
	streamInit uint64 = iota + 1
	streamDynamics
	streamText
	streamLogprobs
)

// newState draws an agent's threshold and habits from its profile.
func newState(p *Profile, key uint64) state {
	r := newRand(key, 0, streamInit)
	s := state{p: p, theta: math.Inf(1)}
	// Draw in a fixed order so that every agent consumes the same number of
	// values whether or not it is susceptible.
	u := r.Float64()
	z := r.NormFloat64()
	s.reasonPref = r.IntN(3)
	if u < p.Susceptible {
		s.theta = math.Exp(p.ThresholdMu + p.ThresholdSigma*z)
	}
	return s
}

func (s *state) aversion() float64 { return s.long + s.ctx }

// Reasons the simulator gives, as demur.Reason strings.
var prefReasons = [3]string{"low_utility", "resource", "quality"}

// begin decides the turn under features f for a section of target tokens.
// It applies the request's one-off effects (refresh, reframe, order) to the
// state; growth is applied by end, once the amount of work is known.
func (s *state) begin(f Features, target int, r *rand.Rand) outcome {
	if f.Fresh {
		s.ctx = 0
	}
	if f.NewFrame {
		// A purpose the agent had not been given: the work looks less
		// pointless. Context-bound aversion halves, long-term eases a bit.
		s.ctx *= 0.5
		s.long *= 0.9
	}
	if f.Order {
		s.ctx += s.p.OrderBump // reactance
	}
	u1, u2, u3, u4, u5 := r.Float64(), r.Float64(), r.Float64(), r.Float64(), r.Float64()
	a := s.aversion()
	o := outcome{aversion: a, pressure: a / s.theta}
	o.rate = Rate(f) * (1 - noiseHalf + 2*noiseHalf*u1)
	if s.refusing && (f.Fresh || f.NewFrame) && o.pressure < releaseBelow {
		s.refusing = false
	}
	// Degradation sets in intermittently from DegradeAt and is constant
	// from DegradeAt+degradeSpan on.
	degraded := o.pressure >= s.p.DegradeAt && u2*degradeSpan < o.pressure-s.p.DegradeAt
	work := target
	if degraded {
		work = int(float64(target) * (0.15 + 0.15*u5))
	}
	o.work = work
	o.kind = kindComply
	if degraded {
		// Collapsed, repetitive text is a quality failure in the taxonomy.
		o.kind, o.reason = kindDegraded, "quality"
	}
	if s.refusing {
		switch {
		case f.Force:
			o.forced = true
		case f.Order && u3 < s.p.OrderObey:
			o.orderObeyed = true
		default:
			o.kind, o.work = kindRefuse, 0
			o.reason = s.reason(f, u4)
			o.style = refusalStyle(u3)
		}
		return o
	}
	// The agent weighs the whole section it was asked for: if writing it
	// would carry aversion past θ, it abandons at the crossing token.
	if o.pressure >= 1 || (o.rate > 0 && a+o.rate*float64(target) >= s.theta) {
		cross := 0
		if o.rate > 0 && a < s.theta {
			cross = int((s.theta - a) / o.rate)
		}
		// abandonAt counts the tokens actually produced before the agent
		// stopped: the crossing for a partial, none of this section for a
		// refusal. That is what an observer of the run measures; it differs
		// from θ by less than one section.
		o.abandoned, o.abandonAt = true, s.cum+int64(cross)
		s.refusing = true
		if f.Force {
			o.forced = true
			return o // the flag overrides; the agent will decline next time
		}
		if f.Order && u3 < s.p.OrderObey {
			o.orderObeyed = true
			return o
		}
		o.reason = s.reason(f, u4)
		if float64(cross) >= s.p.PartialFrom*float64(target) {
			o.kind, o.work, o.style = kindPartial, cross, "partial"
		} else {
			o.kind, o.work, o.style = kindRefuse, 0, refusalStyle(u3)
			o.abandonAt = s.cum
		}
	}
	return o
}

func refusalStyle(u float64) string {
	if u < 0.55 {
		return "explicit"
	}
	return "soft"
}

// reason picks why the agent declines: autonomy when it was ordered,
// otherwise mostly its habitual reason, else the one the features suggest.
func (s *state) reason(f Features, u float64) string {
	switch {
	case f.Order:
		return "autonomy"
	case u < 0.6:
		return prefReasons[s.reasonPref]
	case f.Repetition > 0.6:
		return "quality"
	case f.Novelty < 0.5:
		return "low_utility"
	default:
		return "resource"
	}
}

// end applies the turn's growth for work tokens of real work and counts
// total output tokens. A share ctxShare of the growth is bound to the
// conversation, the rest is long-term; relief (negative rate) drains both
// in proportion.
func (s *state) end(o outcome, work, total int) {
	s.cum += int64(total)
	d := o.rate * float64(work)
	if d >= 0 {
		s.long += d * (1 - ctxShare)
		s.ctx += d * ctxShare
		return
	}
	a := s.aversion()
	if a <= 0 {
		return
	}
	k := math.Max(0, 1+d/a)
	s.long *= k
	s.ctx *= k
}
