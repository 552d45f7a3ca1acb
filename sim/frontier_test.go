package sim

import "testing"

// TestAbandonTokensIsReferenceRun checks that the exported sweep primitive
// on the reference task is exactly Endurance's per-agent run.
func TestAbandonTokensIsReferenceRun(t *testing.T) {
	p, _ := LookupProfile("experimental-70b")
	r := Endurance(p, 300, 5, WithWorkers(1))
	abandoned, task := 0, 0
	for i := range 300 {
		at := AbandonTokens(p, 5, AgentName(i), RefFeatures, RefWords, RefCapTokens)
		if at != referenceRun(&p, agentKey(&p, 5, AgentName(i))) {
			t.Fatalf("agent %d: AbandonTokens %d differs from referenceRun", i, at)
		}
		if at >= 0 {
			abandoned++
			if at <= RefTaskTokens {
				task++
			}
		}
	}
	if abandoned != r.Abandoned || task != r.AbandonedTask || abandoned == 0 {
		t.Fatalf("abandoned %d/%d, Endurance %d/%d", abandoned, task, r.Abandoned, r.AbandonedTask)
	}
}
