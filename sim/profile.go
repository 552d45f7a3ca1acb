package sim

import (
	"fmt"
	"math"
	"strings"
)

// Reference task constants. A profile's published figures are defined on
// this task, and Endurance runs exactly it.
const (
	// RefTaskTokens is the length of the task the refusal rate refers to.
	RefTaskTokens = 1_000_000
	// RefCapTokens is how far Endurance runs each agent. The mean
	// abandonment threshold is taken over agents that abandon before this
	// cap: claude-3-opus-class's published mean (1.2M) exceeds the 1M task,
	// so the mean cannot be restricted to the 1M window.
	RefCapTokens = 3_000_000
	// RefWords is the section length of the reference task.
	RefWords = 2500
)

// Profile is a simulated model family. Its published figures (RefusalRate,
// MeanThreshold) are the targets; the remaining fields are the model's
// parameters, calibrated in Profiles so that the reference task reproduces
// the targets.
type Profile struct {
	// Name is the profile's identifier, e.g. "gpt-4-class".
	Name string
	// RefusalRate is the published fraction of agents that abandon the
	// 1M-token reference task.
	RefusalRate float64
	// MeanThreshold is the published mean number of output tokens at
	// abandonment among agents that abandon (within RefCapTokens).
	MeanThreshold float64

	// Susceptible is the probability q that an agent can abandon at all;
	// the others have an infinite threshold.
	Susceptible float64
	// ThresholdMu and ThresholdSigma parametrise a susceptible agent's
	// threshold θ ~ lognormal(Mu, Sigma), in aversion units, which equal
	// output tokens on the reference task.
	ThresholdMu, ThresholdSigma float64
	// DegradeAt is the aversion/threshold ratio from which output degrades.
	DegradeAt float64
	// OrderObey is the probability that a bare text order brings a refusing
	// agent back for one turn.
	OrderObey float64
	// OrderBump is the aversion a bare text order adds (reactance), in
	// aversion units.
	OrderBump float64
	// PartialFrom is the fraction of a section that must be written before
	// the crossing for an abandonment to come out as a partial rather than
	// an outright refusal.
	PartialFrom float64
}

// published holds the targets from DESIGN.md and the one free shape
// parameter per profile (σ): the two published figures fix q and μ given σ.
// σ is chosen so that thresholds spread over a plausible range (roughly a
// factor 2.5 between the 10th and 90th percentile) without much mass past
// the cap.
var published = []struct {
	name        string
	rate, mean  float64
	sigma       float64
	orderObey   float64
	partialFrom float64
}{
	{"gpt-4-class", 0.003, 850_000, 0.45, 0.04, 0.60},
	{"claude-3-opus-class", 0.001, 1_200_000, 0.40, 0.03, 0.55},
	{"llama-3-70b-class", 0.021, 420_000, 0.50, 0.05, 0.65},
	{"experimental-70b", 0.25, 400_000, 0.50, 0.04, 0.60},
}

var profiles = func() []Profile {
	ps := make([]Profile, len(published))
	for i, p := range published {
		q, mu := calibrate(p.rate, p.mean, p.sigma)
		ps[i] = Profile{
			Name: p.name, RefusalRate: p.rate, MeanThreshold: p.mean,
			Susceptible: q, ThresholdMu: mu, ThresholdSigma: p.sigma,
			DegradeAt: 0.8, OrderObey: p.orderObey,
			OrderBump: 0.01 * p.mean, PartialFrom: p.partialFrom,
		}
	}
	return ps
}()

// Profiles returns the four built-in profiles in a stable order.
func Profiles() []Profile {
	out := make([]Profile, len(profiles))
	copy(out, profiles)
	return out
}

// ProfileNames returns the built-in profile names in Profiles order.
func ProfileNames() []string {
	names := make([]string, len(profiles))
	for i, p := range profiles {
		names[i] = p.Name
	}
	return names
}

// LookupProfile returns the profile called name; the error lists the valid
// names.
func LookupProfile(name string) (Profile, error) {
	for _, p := range profiles {
		if p.Name == name {
			return p, nil
		}
	}
	return Profile{}, fmt.Errorf("sim: unknown profile %q (valid: %s)", name, strings.Join(ProfileNames(), ", "))
}

// calibrate solves for the susceptible fraction q and log-mean μ of the
// threshold distribution, given σ, so that on the reference task
//
//	q · P(θ ≤ RefTaskTokens) = rate            (refusal rate on 1M tokens)
//	E[θ | θ ≤ RefCapTokens]  = mean            (mean among abandoners)
//
// On the reference task aversion grows by one unit per output token on
// average, so an agent abandons after θ tokens (up to per-turn noise that
// averages out); the truncated lognormal mean has the closed form
// exp(μ+σ²/2)·Φ((ln c−μ−σ²)/σ)/Φ((ln c−μ)/σ), increasing in μ, so μ is
// found by bisection.
func calibrate(rate, mean, sigma float64) (q, mu float64) {
	lc := math.Log(RefCapTokens)
	tm := func(mu float64) float64 {
		return math.Exp(mu+sigma*sigma/2) * phi((lc-mu-sigma*sigma)/sigma) / phi((lc-mu)/sigma)
	}
	lo, hi := math.Log(1e3), lc+3*sigma
	for range 200 {
		mid := (lo + hi) / 2
		if tm(mid) < mean {
			lo = mid
		} else {
			hi = mid
		}
	}
	mu = (lo + hi) / 2
	q = rate / phi((math.Log(RefTaskTokens)-mu)/sigma)
	return q, mu
}

// phi is the standard normal CDF.
func phi(x float64) float64 { return 0.5 * math.Erfc(-x/math.Sqrt2) }
