// Package demur is the domain of refusal-aware orchestration for multi-agent
// LLM systems: the types every part speaks (Task, Turn, Verdict, Decision,
// Record) and the small interfaces between parts (Backend, Detector, Store,
// Bus).
//
// A turn flows through detect → explain → decide → (override) → record →
// measure. The root package does no I/O and imports no adapter; adapters
// (sim, sqlite, natsbus, …) import it.
package demur
