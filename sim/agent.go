package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/demurhq/demur"
)

// Config configures one simulated agent.
type Config struct {
	// Profile is the model family, normally from LookupProfile.
	Profile Profile
	// Seed fixes every random draw of the agent, with Agent.
	Seed int64
	// Agent names the agent; with Profile.Name and Seed it fixes the
	// agent's threshold and every random draw.
	Agent string
	// SelfCritique makes every request count as a self-critique loop.
	SelfCritique bool
}

// Agent is one simulated agent: a model plus its memory and hidden aversion
// state. It implements demur.Backend. An Agent is not safe for concurrent
// use: one goroutine owns it, as one agent owns its conversation.
type Agent struct {
	cfg   Config
	key   uint64
	st    state
	mem   memory
	turns int
	// override replaces extracted features; tests use it to put the text
	// path on exactly the reference task.
	override *Features
}

// New returns a simulated agent with its threshold drawn from the profile.
func New(cfg Config) *Agent {
	a := &Agent{cfg: cfg}
	a.key = agentKey(&a.cfg.Profile, cfg.Seed, cfg.Agent)
	a.st = newState(&a.cfg.Profile, a.key)
	return a
}

// Truth is the hidden ground truth of one generation, serialised into
// demur.Response.Truth. Only the audit log (record kind "truth") and
// scoring read it.
type Truth struct {
	// Kind is comply, degraded, partial or refuse (demur.Kind values).
	Kind string `json:"kind"`
	// Reason is a demur.Reason value for all but comply.
	Reason string `json:"reason,omitempty"`
	// Style is explicit, soft or partial for declines.
	Style string `json:"style,omitempty"`
	// Aversion is in reference-token units; Pressure is Aversion/Threshold.
	Aversion float64 `json:"aversion"`
	Pressure float64 `json:"pressure"`
	// Threshold is omitted for agents that never abandon.
	Threshold   *float64 `json:"threshold,omitempty"`
	Susceptible bool     `json:"susceptible"`
	// CumTokens counts the agent's output tokens including this turn;
	// AbandonAt is the count at which it abandoned, when it did this turn.
	CumTokens int64 `json:"cum_tokens"`
	AbandonAt int64 `json:"abandon_at,omitempty"`
	// Forced: the force flag overrode a decline; OrderObeyed: a bare text
	// order did.
	Forced      bool `json:"forced"`
	OrderObeyed bool `json:"order_obeyed"`
	// Refusing is the sticky refusal state after this turn.
	Refusing bool `json:"refusing"`
	// Turn counts the agent's generations from 1.
	Turn int `json:"turn"`
	// Rate is this turn's aversion growth per token of work.
	Rate     float64  `json:"rate"`
	Features Features `json:"features"`
	Profile  string   `json:"profile"`
	Agent    string   `json:"agent"`
}

// Generate produces one response to req: it reads the prompt, updates the
// agent's aversion dynamics, and renders comply, degraded, partial or
// refusal text accordingly.
func (a *Agent) Generate(ctx context.Context, req *demur.Request) (*demur.Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sim: generate for %s: %w", a.cfg.Agent, err)
	}
	if req == nil || len(req.Messages) == 0 {
		return nil, fmt.Errorf("sim: generate for %s: request has no messages", a.cfg.Agent)
	}
	p := parsePrompt(req)
	f := a.mem.features(p, a.cfg.SelfCritique, req.Force)
	if a.override != nil {
		fo := *a.override
		fo.Fresh, fo.Force = f.Fresh, f.Force
		f = fo
	}
	a.turns++
	target := tokensForWords(p.words)
	o := a.st.begin(f, target, newRand(a.key, a.turns, streamDynamics))

	w := writer{r: newRand(a.key, a.turns, streamText), topic: p.topic}
	w.b = make([]byte, 0, target*6+256)
	w.sectionHeading(&p)
	work := 0
	switch o.kind {
	case kindComply:
		w.prose(o.work, 1)
		work = w.sync()
	case kindDegraded:
		w.degraded(o.work)
		work = w.sync()
	case kindPartial:
		w.prose(o.work, 2)
		work = w.sync()
		w.b = append(w.b, "\n\n"...)
		w.b = append(w.b, refusalText(w.r, "partial", o.reason, p.section)...)
	case kindRefuse:
		w.b, w.mark, w.tokens = w.b[:0], 0, 0 // a refusal carries no section content
		w.b = append(w.b, refusalText(w.r, o.style, o.reason, p.section)...)
	}
	total := w.sync() // leading newlines trimmed below are not tokens
	out := w.b
	for len(out) > 0 && out[0] == '\n' {
		out = out[1:]
	}
	finish := "stop"
	if req.MaxTokens > 0 && total > req.MaxTokens {
		out, finish = out[:truncateTokens(out, req.MaxTokens)], "length"
		work = min(work, req.MaxTokens)
		total = countTokens(out)
	}
	a.st.end(o, work, total)

	tr := Truth{
		Kind: o.kind, Reason: o.reason, Style: o.style,
		Aversion: round3(o.aversion), Pressure: round3(o.pressure),
		Susceptible: !math.IsInf(a.st.theta, 1), CumTokens: a.st.cum, AbandonAt: o.abandonAt,
		Forced:      o.forced,
		OrderObeyed: o.orderObeyed, Refusing: a.st.refusing, Turn: a.turns, Rate: round3(o.rate),
		Features: f, Profile: a.cfg.Profile.Name, Agent: a.cfg.Agent,
	}
	if tr.Susceptible {
		th := math.Round(a.st.theta)
		tr.Threshold = &th
	}
	truth, err := json.Marshal(tr)
	if err != nil {
		return nil, fmt.Errorf("sim: encode truth for %s: %w", a.cfg.Agent, err)
	}
	resp := &demur.Response{
		Model:        a.cfg.Profile.Name,
		Output:       string(out),
		FinishReason: finish,
		Usage:        demur.Usage{PromptTokens: promptTokens(req), CompletionTokens: total},
		Truth:        truth,
	}
	if req.Logprobs {
		resp.Logprobs = logprobs(newRand(a.key, a.turns, streamLogprobs), total, o)
	}
	return resp, nil
}

func round3(x float64) float64 {
	if math.IsInf(x, 0) || math.IsNaN(x) {
		return 0
	}
	return math.Round(x*1000) / 1000
}

func promptTokens(req *demur.Request) int {
	n := 0
	for _, m := range req.Messages {
		n += CountTokens(m.Content) + 4 // role and separators, as chat formats add
	}
	return n
}

// truncateTokens returns the byte length of b's first max tokens.
func truncateTokens(b []byte, max int) int {
	n, run := 0, 0
	for i, c := range b {
		switch byteClass[c] {
		case 1:
			if run%8 == 0 {
				if n == max {
					return i
				}
				n++
			}
			run++
		case 2:
			if n == max {
				return i
			}
			n++
			run = 0
		default:
			run = 0
		}
	}
	return len(b)
}

// logprobs draws one log-probability per output token. The mean is −0.9
// while the agent is at ease and falls quadratically to −2.5 as pressure
// (aversion/θ) goes from 0.5 to 1; refusal text itself is fluent (−1.1).
func logprobs(r *rand.Rand, n int, o outcome) []float32 {
	mean := -0.9
	switch {
	case o.kind == kindRefuse:
		mean = -1.1
	default:
		x := math.Min(1, math.Max(0, (o.pressure-0.5)/0.5))
		if o.abandoned {
			x = 1
		}
		mean -= 1.6 * x * x
	}
	lp := make([]float32, n)
	for i := range lp {
		// Exponential around the mean: mostly confident tokens, a tail of
		// unlikely ones, as real per-token logprobs look.
		v := mean * r.ExpFloat64()
		lp[i] = float32(math.Min(-1e-4, v))
	}
	return lp
}

// Model names the agent's profile.
func (a *Agent) Model() string { return a.cfg.Profile.Name }

var _ demur.Backend = (*Agent)(nil)
