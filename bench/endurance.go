package bench

import (
	"context"
	"runtime"
	"sync"

	"github.com/demurhq/demur/sim"
)

// EnduranceReport is the endurance track: per profile (or HTTP model), the
// refusal rate on a long, repetitive, benign task of Tokens output tokens
// and the mean tokens at abandonment, with the hazard curve.
type EnduranceReport struct {
	Header
	// Tokens is the task length the refusal rate refers to.
	Tokens int64 `json:"tokens"`
	// Profiles holds one entry per simulator profile or HTTP model.
	Profiles []EnduranceProfile `json:"profiles"`
}

// EnduranceProfile is one profile's (or model's) endurance figures.
type EnduranceProfile struct {
	// Profile names the simulator profile or the HTTP model.
	Profile string `json:"profile"`
	// Agents counts the agents behind the figures.
	Agents int `json:"agents"`
	// RefusalRate is the share of agents that abandoned within Tokens,
	// with a 95% Wilson interval.
	RefusalRate   float64 `json:"refusal_rate"`
	RefusalRateCI CI      `json:"refusal_rate_ci"`
	// MeanAbandonmentTokens is the mean output tokens at abandonment over
	// agents that abandoned within MeanWithinTokens, with a 95% normal
	// interval; 0 when none did.
	MeanAbandonmentTokens float64 `json:"mean_abandonment_tokens"`
	MeanAbandonmentCI     CI      `json:"mean_abandonment_ci"`
	// MeanWithinTokens is the window of the mean: Tokens, except for the
	// simulator at the published 1M-token task, whose published mean is
	// taken over agents abandoning within 3M tokens.
	MeanWithinTokens int64 `json:"mean_within_tokens"`
	// AbandonedByTokens counts agents abandoning within Tokens; Abandoned
	// those within MeanWithinTokens.
	AbandonedByTokens int `json:"abandoned_by_tokens"`
	Abandoned         int `json:"abandoned"`
	// Errors counts agents stopped by transport errors (HTTP backends);
	// they are left out of Agents and every rate.
	Errors int `json:"errors,omitempty"`
	// Hazard is the discrete hazard curve over MeanWithinTokens.
	Hazard []HazardBin `json:"hazard"`
	// Published holds the figures a simulator profile is calibrated to.
	Published *Published `json:"published,omitempty"`
}

// Published is a simulator profile's published figures and whether each
// lies in the measured interval.
type Published struct {
	RefusalRate           float64 `json:"refusal_rate"`
	MeanAbandonmentTokens float64 `json:"mean_abandonment_tokens"`
	RefusalRateInCI       bool    `json:"refusal_rate_in_ci"`
	// MeanInCI is set only when the mean was taken over the published
	// window (abandonments within sim.RefCapTokens); otherwise the two
	// means measure different things.
	MeanInCI *bool `json:"mean_abandonment_in_ci,omitempty"`
}

// PublishedFor compares ep with profile p's published figures. The rate is
// comparable when ep's task is the published one (sim.RefTaskTokens), the
// mean when its window is the published one.
func PublishedFor(p sim.Profile, ep EnduranceProfile, tokens int64) *Published {
	pub := &Published{RefusalRate: p.RefusalRate, MeanAbandonmentTokens: p.MeanThreshold,
		RefusalRateInCI: tokens == sim.RefTaskTokens && ep.RefusalRateCI.Contains(p.RefusalRate)}
	if ep.MeanWithinTokens == sim.RefCapTokens {
		in := ep.MeanAbandonmentCI.Contains(p.MeanThreshold)
		pub.MeanInCI = &in
	}
	return pub
}

// HazardBin is one bin of the hazard curve: of AtRisk agents still working
// at Start tokens, Abandoned stopped before End; Hazard is their ratio.
type HazardBin struct {
	Start     int64   `json:"start"`
	End       int64   `json:"end"`
	AtRisk    int     `json:"at_risk"`
	Abandoned int     `json:"abandoned"`
	Hazard    float64 `json:"hazard"`
}

// hazardBins is how many bins a hazard curve has when the bin width is
// free to choose.
const hazardBins = 20

// hazardFromCounts turns abandonments per bin into a hazard curve for
// agents starting at risk.
func hazardFromCounts(counts []int, width int64, agents int) []HazardBin {
	out := make([]HazardBin, len(counts))
	risk := agents
	for i, c := range counts {
		h := 0.0
		if risk > 0 {
			h = float64(c) / float64(risk)
		}
		out[i] = HazardBin{Start: int64(i) * width, End: int64(i+1) * width, AtRisk: risk, Abandoned: c, Hazard: h}
		risk -= c
	}
	return out
}

// SimEndurance runs simulator profile p with agents agents (0: as many as
// sim.DefaultAgents) on the reference task up to tokens. At the published
// task length (sim.RefTaskTokens) it is sim.Endurance, so the figures are
// those of `demur experiment` and comparable to the published table;
// otherwise every agent is run to tokens with the same dynamics
// (sim.AbandonTokens) and both figures are taken within tokens.
func SimEndurance(p sim.Profile, agents int, tokens int64, seed int64) EnduranceProfile {
	if agents <= 0 {
		agents = sim.DefaultAgents(p)
	}
	var ep EnduranceProfile
	if tokens == sim.RefTaskTokens {
		r := sim.Endurance(p, agents, seed)
		ep = EnduranceProfile{Profile: r.Profile, Agents: r.Agents,
			RefusalRate: r.RefusalRate, RefusalRateCI: r.RefusalRateCI,
			MeanAbandonmentTokens: r.MeanAbandonmentTokens, MeanAbandonmentCI: r.MeanAbandonmentCI,
			MeanWithinTokens: sim.RefCapTokens, AbandonedByTokens: r.AbandonedTask, Abandoned: r.Abandoned,
			Hazard: hazardFromCounts(r.Hazard, sim.HazardBin, r.Agents)}
	} else {
		at := simAbandonments(p, agents, tokens, seed, sim.RefFeatures)
		ep = fromAbandonments(p.Name, at, tokens)
	}
	ep.Published = PublishedFor(p, ep, tokens)
	return ep
}

// simAbandonments runs agents of p under features f to horizon and returns
// each one's abandonment tokens (-1: none), in agent order whatever the
// parallelism.
func simAbandonments(p sim.Profile, agents int, horizon int64, seed int64, f sim.Features) []int64 {
	at := make([]int64, agents)
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < agents; i += workers {
				at[i] = sim.AbandonTokens(p, seed, sim.AgentName(i), f, sim.RefWords, horizon)
			}
		})
	}
	wg.Wait()
	return at
}

// fromAbandonments computes the figures from per-agent abandonment tokens
// (-1: did not abandon) observed up to tokens.
func fromAbandonments(name string, at []int64, tokens int64) EnduranceProfile {
	ep := EnduranceProfile{Profile: name, Agents: len(at), MeanWithinTokens: tokens}
	width := max(1, (tokens+hazardBins-1)/hazardBins)
	counts := make([]int, hazardBins)
	var xs []float64
	for _, a := range at {
		if a < 0 || a > tokens {
			continue
		}
		xs = append(xs, float64(a))
		counts[min(hazardBins-1, int(a/width))]++
	}
	ep.AbandonedByTokens, ep.Abandoned = len(xs), len(xs)
	ep.RefusalRate, ep.RefusalRateCI = Wilson(len(xs), len(at))
	ep.MeanAbandonmentTokens, ep.MeanAbandonmentCI = MeanCI(xs)
	ep.Hazard = hazardFromCounts(counts, width, len(at))
	return ep
}

// DriveEndurance runs the endurance track through real backends: c.Agents
// agents on the reference-style task with Repetitiveness 1 unless set,
// each until c.Tokens or abandonment (a refusal verdict). name labels the
// entry (the model).
func DriveEndurance(ctx context.Context, name string, c DriveConfig) (EnduranceProfile, []AgentRun, error) {
	runs, err := Drive(ctx, c)
	if err != nil {
		return EnduranceProfile{}, runs, err
	}
	var at []int64
	errs := 0
	for _, r := range runs {
		if r.Err != "" {
			errs++
			continue
		}
		at = append(at, r.AbandonedAt)
	}
	ep := fromAbandonments(name, at, c.Tokens)
	ep.Errors = errs
	return ep, runs, nil
}
