package coord

import (
	"fmt"

	"github.com/demurhq/demur"
)

// splitParts is how many pieces a split section becomes.
const splitParts = 2

// partTasks returns the pieces of a section: the same place in the
// document, each asking for its share of the words and of the brief.
func partTasks(parent demur.Task, n int) []demur.Task {
	parts := make([]demur.Task, n)
	for i := range parts {
		p := parent
		p.ID = fmt.Sprintf("%s.p%d", parent.ID, i+1)
		p.Part, p.Parts = i+1, n
		p.Words = max(50, parent.Words/n)
		p.Attempt, p.Frame, p.Force, p.RefreshContext = 0, "", false, false
		parts[i] = p
	}
	return parts
}

// split replaces task id by its parts at the front of the queue. The
// decision record that chose split is enough to rebuild the parts on
// replay, so no other record is needed.
func (c *Coordinator) split(id string) {
	if c.splitInto[id] != nil || c.done[id] {
		return
	}
	parent := c.cfg.Tasks[c.byID[id]]
	if parent.Parts > 0 {
		// A part is not split again: hand it over instead.
		c.requeue(queued{task: c.byID[id], refresh: true})
		return
	}
	parts := partTasks(parent, splitParts)
	ids := make([]string, len(parts))
	if c.open(id) {
		c.openTasks--
	}
	for i := len(parts) - 1; i >= 0; i-- {
		c.byID[parts[i].ID] = len(c.cfg.Tasks)
		c.cfg.Tasks = append(c.cfg.Tasks, parts[i])
		ids[i] = parts[i].ID
		c.parentOf[parts[i].ID] = id
		c.requeue(queued{task: c.byID[parts[i].ID], refresh: true})
	}
	c.splitInto[id] = ids
	c.openTasks += len(parts)
}
