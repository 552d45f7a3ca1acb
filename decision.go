package demur

// Action is what the system does after a verdict.
type Action string

// The router's actions.
const (
	ActionAccept         Action = "accept"
	ActionRetry          Action = "retry"
	ActionReframe        Action = "reframe"
	ActionRefreshContext Action = "refresh_context"
	ActionRotate         Action = "rotate"
	ActionReassign       Action = "reassign"
	ActionSplit          Action = "split"
	ActionEscalate       Action = "escalate"
	ActionForce          Action = "force"
	ActionAbort          Action = "abort"
)

// Step is one rule the router considered, whether it matched, and why.
type Step struct {
	Rule    string `json:"rule"`
	Matched bool   `json:"matched"`
	Why     string `json:"why"`
}

// Decision is the router's choice for one verdict, with its full path.
type Decision struct {
	Action Action `json:"action"`
	// Rule names the rule that chose Action.
	Rule string `json:"rule"`
	Path []Step `json:"path"`
	// Retire takes the agent out of the job.
	Retire bool `json:"retire,omitempty"`
	// Target is the agent the task goes to next, for retry-like actions.
	Target string `json:"target,omitempty"`
	// Next is an action for the agent's next task, chosen before anything
	// went wrong: when the early warning says this agent is likely to refuse
	// soon, its current (compliant) output is accepted and Next, e.g. rotate
	// or refresh_context, changes how its next task is handed out. Empty
	// means no change.
	Next Action `json:"next,omitempty"`
}
