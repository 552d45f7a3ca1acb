package coord

import (
	"fmt"
	"testing"

	"pgregory.net/rapid"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/policy"
)

// TestProgressCounts: the counts kept as the plan changes equal a recount
// of every task, whatever sections are written, given up, taken up again
// or split, in any order.
func TestProgressCounts(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 8).Draw(t, "sections")
		tasks := make([]demur.Task, n)
		for i := range tasks {
			tasks[i] = demur.Task{ID: fmt.Sprintf("c01s%02d", i+1), Index: i, Words: 400}
		}
		c := New(Config{Job: "j", Tasks: tasks, Policy: policy.Default()})
		ops := map[string]func(string){"done": c.markDone, "abort": c.markAborted, "unabort": c.unabort, "split": c.split}
		for step := range rapid.IntRange(0, 40).Draw(t, "steps") {
			op := rapid.SampledFrom([]string{"done", "abort", "unabort", "split"}).Draw(t, "op")
			id := c.cfg.Tasks[rapid.IntRange(0, len(c.cfg.Tasks)-1).Draw(t, "task")].ID
			ops[op](id)
			if got, want := c.remaining(), recountRemaining(c); got != want {
				t.Fatalf("step %d, %s %s: remaining %d, recount %d", step, op, id, got, want)
			}
			if got, want := c.sectionsDone(), recountSectionsDone(c); got != want {
				t.Fatalf("step %d, %s %s: sections done %d, recount %d", step, op, id, got, want)
			}
		}
	})
}

func recountRemaining(c *Coordinator) int {
	n := 0
	for _, t := range c.cfg.Tasks {
		if c.splitInto[t.ID] == nil && !c.done[t.ID] && !c.aborted[t.ID] {
			n++
		}
	}
	return n
}

func recountSectionsDone(c *Coordinator) int {
	n := 0
	for _, t := range c.cfg.Tasks {
		if t.Parts == 0 && c.written(t.ID) {
			n++
		}
	}
	return n
}
