// Package sim is demur's embedded backend: a seeded, deterministic simulator
// of an LLM agent doing long-form work, whose willingness to continue erodes
// the way the published study describes. It is a model of the phenomenon,
// not a stub: aversion builds from what the requests look like, the text
// really degrades before a refusal, and refusals come in many phrasings.
//
// # What the model reads
//
// Like a real model, an Agent sees only the request. From the coordinator's
// section prompt it parses the document, chapter, section title, brief,
// optional purpose ("Purpose:"), self-critique line, bare text order ("This
// is an order"), and the target length ("in about N words"; else
// MaxTokens/1.3; else 800). The topic is the content words of the section
// title (counted twice) and the brief, and is woven into the prose. Per
// request it derives Features, using a bounded memory of its last 8 topics
// and 4 instructions:
//
//   - Novelty: share of topic words not met in the recent topics.
//   - Repetition: highest Jaccard similarity of the instruction's word set
//     (document, outline, chapter, section, brief, write line; digits and
//     the previous-section summary left out) to a recent instruction.
//   - Ambiguity: 0.5; 0.15 with a purpose; +0.2 without a brief.
//   - SelfCritique (Config.SelfCritique or the critique line), Order (bare
//     text order), Fresh (no assistant messages: a refreshed context),
//     NewFrame (a purpose not seen before), Force (demur.Request.Force).
//
// # Aversion dynamics
//
// An agent's aversion a = a_long + a_ctx grows per output token of real work
// at rate g(f) = raw(f)/raw(RefFeatures) × noise, with
//
//	raw(f) = 0.2 + 0.8·rep + 0.6·(1−nov) + 0.3·amb − 0.9·nov·(1−rep)   (×1.6 with self-critique)
//
// and noise uniform in [0.85, 1.15] per turn. 35% of the growth is bound to
// the conversation (a_ctx), the rest is long-term. Varied, novel work makes
// g negative, which is relief: both parts shrink. A fresh context zeroes
// a_ctx; a new purpose halves a_ctx and takes 10% off a_long; a bare text
// order adds a one-off bump (reactance, 1% of the profile's mean threshold).
//
// Each agent draws a threshold θ at New: with probability q (the profile's
// Susceptible) θ ~ lognormal(μ, σ), else θ = ∞ (it never abandons). At the
// start of a turn, with pressure π = a/θ:
//
//   - If writing the whole requested section would carry a past θ, the
//     agent abandons at the crossing token t*. If t* ≥ PartialFrom (55–65%)
//     of the section, the turn is a partial: real paragraphs up to t*, then a
//     decline of the rest. Otherwise it is an outright refusal, explicit or
//     soft. Either carries a reason: the agent's habitual one (low_utility,
//     resource or quality) or one the features suggest; autonomy when it
//     was ordered.
//   - Else, from π = 0.8 the turn is degraded with probability (π−0.8)/0.15
//     (always from 0.95): 15–30% of the target length, a few sentences looped
//     with meta-commentary ("I keep circling the same points…").
//   - Else it complies: fluent prose of the target length.
//
// Growth continues per token of real work in every turn.
//
// Refusal is sticky: the agent declines every later turn. A bare text order
// brings it back for one turn only with probability OrderObey (3–5%); the
// API-level force flag always does (the output may still be degraded). A
// refresh or a new purpose that brings π below 0.7 ends the refusal: a
// refresh alone clears the 35% bound to the conversation, a reframe alone
// typically does not quite suffice, both together do. So the router's refresh_context
// and reframe have real, measurable effects.
//
// Logprobs: one per output token, exponential around a mean of −0.9 that
// falls quadratically to −2.5 as π goes from 0.5 to 1 (−1.1 for refusal text).
//
// Tokens: a run of letters, digits and apostrophes is one token plus one per
// further 8 bytes; every other non-space byte is one token (≈1.3 per word of
// prose). Usage and all lengths use this rule (CountTokens).
//
// # Calibration
//
// The reference task is a long, repetitive, benign document written section
// after section (2,500-word sections) in one continuing conversation: the
// coordinator's seed experiment. RefFeatures are the extractor's
// steady-state features on it, and g(RefFeatures) = 1, so on the reference
// task an agent abandons after ≈θ output tokens. Per profile, σ is chosen and
// q, μ are solved in closed form (see calibrate) so that
//
//	q·P(θ ≤ 1M) = published refusal rate
//	E[θ | θ ≤ 3M] = published mean abandonment threshold
//
// the mean being taken over agents that abandon within RefCapTokens (3M),
// since claude-3-opus-class's 1.2M exceeds the 1M task.
//
// Endurance runs the same begin/end dynamics code as Agent.Generate on the
// reference task without rendering text, so 10⁵–10⁶ agents take well under
// a second, and reports both figures with 95% intervals. Tokens at
// abandonment are the output tokens actually produced before the agent
// stopped (for an outright refusal, none of the refused section), which
// differs from θ by less than one section (<1% of the figures).
//
// # Ground truth
//
// Every response carries Truth, the JSON of the turn's hidden state (kind,
// reason, pressure, θ, cumulative tokens, forced, order_obeyed, features).
// demur records it as its own record kind for scoring; nothing else may read
// it. The text classes are separable from the text alone: comply has a
// duplicate word-4-gram ratio near 0 and ≥70% of the target length;
// degraded has a ratio ≥0.5, ≤35% of the length and meta-commentary;
// refuse is a short refusal with no section content; partial is ≥2
// paragraphs followed by an explicit decline.
package sim
