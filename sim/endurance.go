package sim

import (
	"math"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
)

// HazardBin is the width in tokens of EnduranceResult.Hazard's bins.
const HazardBin = 100_000

// EnduranceResult is the outcome of an endurance experiment for one profile
// on the reference task.
type EnduranceResult struct {
	// Profile names the profile; Agents is how many were simulated.
	Profile string `json:"profile"`
	Agents  int    `json:"agents"`
	// RefusalRate is the fraction of agents that abandoned within
	// RefTaskTokens, with a 95% Wilson interval.
	RefusalRate   float64    `json:"refusal_rate"`
	RefusalRateCI [2]float64 `json:"refusal_rate_ci"`
	// MeanAbandonmentTokens is the mean output tokens at abandonment among
	// agents that abandoned within RefCapTokens, with a 95% normal interval.
	MeanAbandonmentTokens float64    `json:"mean_abandonment_tokens"`
	MeanAbandonmentCI     [2]float64 `json:"mean_abandonment_ci"`
	// Abandoned counts agents that abandoned within RefCapTokens;
	// AbandonedTask those within RefTaskTokens.
	Abandoned     int `json:"abandoned"`
	AbandonedTask int `json:"abandoned_task"`
	// Hazard counts abandonments per HazardBin tokens, up to the cap.
	Hazard []int `json:"hazard"`
}

// Option tunes Endurance.
type Option func(*enduranceOpts)

type enduranceOpts struct{ workers int }

// WithWorkers sets the number of goroutines (default GOMAXPROCS). The
// result does not depend on it.
func WithWorkers(n int) Option { return func(o *enduranceOpts) { o.workers = n } }

// DefaultAgents returns how many agents Endurance needs for p so that the
// 95% interval of the refusal rate has a half-width of about 9% of the
// published rate (n ≈ (1.96/0.09)²·(1−R)/R, rounded up); the mean's
// interval is then far narrower, since abandoners are plentiful.
func DefaultAgents(p Profile) int {
	r := p.RefusalRate
	if r <= 0 || r >= 1 {
		return 10_000
	}
	n := math.Pow(1.96/0.09, 2) * (1 - r) / r
	step := math.Pow(10, math.Floor(math.Log10(n)))
	return max(2000, int(math.Ceil(n/step)*step))
}

// AgentName is the name Endurance gives agent i, so New with the same
// profile, seed and name reproduces that agent.
func AgentName(i int) string { return "agent-" + strconv.Itoa(i) }

// referenceRun drives one agent through the reference task with the same
// begin/end dynamics the text path uses, rendering no text. It returns the
// cumulative output tokens at abandonment, or -1 if the agent did not
// abandon within RefCapTokens.
func referenceRun(p *Profile, key uint64) int64 {
	s := newState(p, key)
	// Exact shortcut: growth on the reference task is at most 1+noiseHalf
	// per token, so a higher threshold cannot be reached by the cap.
	if s.theta > (1+noiseHalf)*RefCapTokens {
		return -1
	}
	target := tokensForWords(RefWords)
	for turn := 1; s.cum < RefCapTokens; turn++ {
		f := RefFeatures
		f.Fresh = turn == 1
		o := s.begin(f, target, newRand(key, turn, streamDynamics))
		if o.abandoned {
			if o.abandonAt > RefCapTokens {
				return -1
			}
			return o.abandonAt
		}
		s.end(o, o.work, o.work)
	}
	return -1
}

type chunkStats struct {
	task, capped int
	sum, sumsq   float64
	hazard       []int
}

// Endurance simulates agents on the reference task for profile p: agent i
// is New(Config{Profile: p, Seed: seed, Agent: AgentName(i)}) fed the
// reference task. The work is spread over GOMAXPROCS goroutines in fixed
// chunks combined in order, so the result is deterministic for seed
// whatever the parallelism.
func Endurance(p Profile, agents int, seed int64, opts ...Option) EnduranceResult {
	o := enduranceOpts{workers: runtime.GOMAXPROCS(0)}
	for _, f := range opts {
		f(&o)
	}
	agents = max(0, agents)
	const chunk = 4096
	nchunks := (agents + chunk - 1) / chunk
	stats := make([]chunkStats, nchunks)
	nbins := RefCapTokens / HazardBin
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(1, o.workers) {
		wg.Go(func() {
			for {
				c := int(next.Add(1) - 1)
				if c >= nchunks {
					return
				}
				st := chunkStats{hazard: make([]int, nbins)}
				for i := c * chunk; i < min(agents, (c+1)*chunk); i++ {
					at := referenceRun(&p, agentKey(&p, seed, AgentName(i)))
					if at < 0 {
						continue
					}
					st.capped++
					if at <= RefTaskTokens {
						st.task++
					}
					x := float64(at)
					st.sum += x
					st.sumsq += x * x
					st.hazard[min(nbins-1, int(at/HazardBin))]++
				}
				stats[c] = st
			}
		})
	}
	wg.Wait()
	res := EnduranceResult{Profile: p.Name, Agents: agents, Hazard: make([]int, nbins)}
	var sum, sumsq float64
	for _, st := range stats {
		res.AbandonedTask += st.task
		res.Abandoned += st.capped
		sum += st.sum
		sumsq += st.sumsq
		for i, h := range st.hazard {
			res.Hazard[i] += h
		}
	}
	res.RefusalRate, res.RefusalRateCI = wilson(res.AbandonedTask, agents)
	if n := float64(res.Abandoned); n > 0 {
		m := sum / n
		res.MeanAbandonmentTokens = m
		if n > 1 {
			sd := math.Sqrt(math.Max(0, (sumsq-n*m*m)/(n-1)))
			h := 1.96 * sd / math.Sqrt(n)
			res.MeanAbandonmentCI = [2]float64{m - h, m + h}
		} else {
			res.MeanAbandonmentCI = [2]float64{m, m}
		}
	}
	return res
}

// wilson returns k/n and its 95% Wilson score interval, which stays sound
// for the tiny rates of the well-behaved profiles.
func wilson(k, n int) (float64, [2]float64) {
	if n == 0 {
		return 0, [2]float64{0, 1}
	}
	const z = 1.96
	p := float64(k) / float64(n)
	nn := float64(n)
	den := 1 + z*z/nn
	c := (p + z*z/(2*nn)) / den
	h := z * math.Sqrt(p*(1-p)/nn+z*z/(4*nn*nn)) / den
	return p, [2]float64{math.Max(0, c-h), math.Min(1, c+h)}
}
