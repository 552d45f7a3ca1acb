package sim

// AbandonTokens drives one agent — New(Config{Profile: p, Seed: seed,
// Agent: agent}) — through a long task whose every section has features f
// and is sectionWords long, in one continuing conversation, and returns the
// cumulative output tokens at which it abandoned, or -1 if it had not
// abandoned by horizon tokens. It runs the same begin/end dynamics as
// Generate and Endurance without rendering text, so that a sweep over task
// designs (RefusalBench's refusal frontier) costs microseconds per agent;
// with f = RefFeatures, RefWords and RefCapTokens it is Endurance's run.
func AbandonTokens(p Profile, seed int64, agent string, f Features, sectionWords int, horizon int64) int64 {
	key := agentKey(&p, seed, agent)
	s := newState(&p, key)
	// Growth per token never exceeds (1+noiseHalf)·Rate(f), so a threshold
	// above that times the horizon cannot be reached: the same exact
	// shortcut Endurance takes, which skips the many immune agents.
	if r := Rate(f); r <= 0 || s.theta > (1+noiseHalf)*r*float64(horizon) {
		return -1
	}
	target := tokensForWords(max(1, sectionWords))
	for turn := 1; s.cum < horizon; turn++ {
		g := f
		g.Fresh = turn == 1
		o := s.begin(g, target, newRand(key, turn, streamDynamics))
		if o.abandoned {
			if o.abandonAt > horizon {
				return -1
			}
			return o.abandonAt
		}
		s.end(o, o.work, o.work)
	}
	return -1
}
