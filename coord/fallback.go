package coord

import (
	"fmt"

	"github.com/demurhq/demur"
)

// fallbackAgent returns a live agent running the policy's fallback model,
// other than from, starting one through Spawn when the job has none. It
// returns "" when there is no fallback model or no way to run one; the
// caller then hands the work to any other agent.
func (c *Coordinator) fallbackAgent(from string) string {
	model := c.cfg.Policy.Fallback
	if model == "" {
		return ""
	}
	for _, id := range c.order {
		a := c.agents[id]
		if id != from && a.live && !a.paused && a.entry.Model == model {
			return id
		}
	}
	if c.cfg.Spawn == nil {
		return ""
	}
	id := fmt.Sprintf("fallback-%02d", c.spawned+1)
	if err := c.cfg.Spawn(id, model); err != nil {
		c.record(demur.RecAgent, "router", demur.AgentPayload{Agent: id, State: "failed",
			Model: model, Reason: fmt.Sprintf("could not start the fallback model: %v", err)})
		c.cfg.Policy.Fallback = "" // one failure is enough: later rotates reassign
		return ""
	}
	c.spawned++
	c.join(demur.AgentEntry{ID: id, Backend: "fallback", Model: model})
	c.record(demur.RecAgent, "router", demur.AgentPayload{Agent: id, State: "joined", Model: model,
		Reason: fmt.Sprintf("rotate to the fallback model %s", model)})
	return id
}

// join adds an agent to the job's team.
func (c *Coordinator) join(e demur.AgentEntry) {
	a := &agentState{entry: e, live: true, detector: c.cfg.NewDetector(e.ID)}
	if c.cfg.NewMonitor != nil {
		a.monitor = c.cfg.NewMonitor(e.ID)
	}
	c.agents[e.ID] = a
	c.order = append(c.order, e.ID)
}
