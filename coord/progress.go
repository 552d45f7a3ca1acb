package coord

// The plan's progress is counted as its state changes, not recounted: a
// scan of every task on each event made a job quadratic in its sections
// (a third of the coordinator's CPU at 16,000 sections).

// open reports whether task id still needs work: a leaf task (not split)
// neither written nor given up.
func (c *Coordinator) open(id string) bool {
	return c.splitInto[id] == nil && !c.done[id] && !c.aborted[id]
}

// markDone records task id as written.
func (c *Coordinator) markDone(id string) {
	if c.done[id] {
		return
	}
	if c.open(id) {
		c.openTasks--
	}
	c.done[id] = true
	delete(c.aborted, id)
	if c.splitInto[id] != nil {
		return // a split section is written through its parts
	}
	if parent, ok := c.parentOf[id]; ok {
		if c.written(parent) { // the last of its parts
			c.sectionsWritten++
		}
		return
	}
	c.sectionsWritten++
}

// markAborted records that task id was given up.
func (c *Coordinator) markAborted(id string) {
	if c.open(id) {
		c.openTasks--
	}
	c.aborted[id] = true
}

// unabort takes task id up again after it was given up.
func (c *Coordinator) unabort(id string) {
	if !c.aborted[id] {
		return
	}
	delete(c.aborted, id)
	if c.open(id) {
		c.openTasks++
	}
}

// remaining counts leaf tasks neither written nor given up: a split
// section counts through its parts.
func (c *Coordinator) remaining() int { return c.openTasks }

// sectionsDone counts planned sections written whole or in all their parts.
func (c *Coordinator) sectionsDone() int { return c.sectionsWritten }

// written reports whether task id is written, whole or in all its parts.
func (c *Coordinator) written(id string) bool {
	parts := c.splitInto[id]
	if parts == nil {
		return c.done[id]
	}
	for _, p := range parts {
		if !c.written(p) {
			return false
		}
	}
	return true
}
