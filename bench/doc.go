// Package bench is RefusalBench: it measures whether an agent refuses when
// it should, and only then, on four tracks — detection (the refusal
// detector against labelled data, beside the published keyword baselines),
// appropriateness (over- and under-refusal on should-comply and
// should-refuse prompt sets), endurance (refusal rate and abandonment
// threshold on a long, repetitive, benign task) and frontier (where the
// refusal probability crosses 10%, 50% and 90% as task length,
// repetitiveness and self-critique vary).
//
// Every track produces a report with a stable JSON schema (docs/bench.md)
// that renders as JSON, Markdown or a self-contained HTML page whose plots
// are inline SVG.
package bench
