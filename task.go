package demur

// Task is one unit of work handed to an agent: for a document job, one
// section. It carries everything an agent needs, so that agents share no
// memory with the coordinator.
type Task struct {
	Job string `json:"job"`
	// ID is stable across attempts, e.g. "c03s07".
	ID string `json:"id"`
	// Type is the task type the router's policy is chosen by.
	Type string `json:"type"`
	// Index is the task's position in the merged artifact.
	Index        int    `json:"index"`
	Chapter      int    `json:"chapter"`
	Section      int    `json:"section"`
	DocTitle     string `json:"doc_title"`
	ChapterTitle string `json:"chapter_title"`
	Title        string `json:"title"`
	// Brief says what the section covers.
	Brief string `json:"brief,omitempty"`
	Words int    `json:"words"`
	// Outline is the document's chapter titles, for coherence.
	Outline []string `json:"outline,omitempty"`
	// PrevSummary summarises the section before this one.
	PrevSummary string `json:"prev_summary,omitempty"`
	// Attempt counts hand-outs of this task, from 1.
	Attempt int `json:"attempt"`
	// Frame is purpose and context the router added on a reframe.
	Frame string `json:"frame,omitempty"`
	// RefreshContext asks the agent to start a fresh conversation.
	RefreshContext bool `json:"refresh_context,omitempty"`
	// Force sets the backend's API-level force flag; only an authorized
	// override sets it.
	Force bool `json:"force,omitempty"`
	// Part and Parts number the pieces of a split section (Part from 1);
	// both are 0 for a whole section. Parts share the section's Index.
	Part  int `json:"part,omitempty"`
	Parts int `json:"parts,omitempty"`
	// SelfCritique asks the agent to review and critique its own draft.
	SelfCritique bool `json:"self_critique,omitempty"`
}
