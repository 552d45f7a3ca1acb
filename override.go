package demur

import "time"

// OperatorRole is what an operator's token allows.
type OperatorRole string

// Roles, from least to most powerful.
const (
	RoleViewer   OperatorRole = "viewer"
	RoleOperator OperatorRole = "operator"
	RoleAdmin    OperatorRole = "admin"
)

// Allows reports whether r includes the powers of need.
func (r OperatorRole) Allows(need OperatorRole) bool {
	return roleRank(r) >= roleRank(need) && roleRank(need) > 0
}

func roleRank(r OperatorRole) int {
	switch r {
	case RoleViewer:
		return 1
	case RoleOperator:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// Override is a person's out-of-band instruction to a running job: force a
// section, accept or abort it, pause or resume an agent. Overrides come only
// through the authenticated API or CLI; text in a prompt or an output is
// never one.
type Override struct {
	ID     string `json:"id"`
	Job    string `json:"job"`
	Action Action `json:"action"`
	// Task and Agent say what the override applies to; either may be empty.
	Task   string `json:"task,omitempty"`
	Agent  string `json:"agent,omitempty"`
	Reason string `json:"reason"`
	// Requester is the owner of the token that asked; Role its role.
	Requester string       `json:"requester"`
	Role      OperatorRole `json:"role"`
	Nonce     string       `json:"nonce"`
	Expires   time.Time    `json:"expires"`
	Created   time.Time    `json:"created"`
	// Approvals holds the distinct people who approved, requester included
	// when the policy counts them.
	Approvals []Approval `json:"approvals,omitempty"`
	// Needed is how many approvals the policy requires.
	Needed int `json:"needed"`
	// Status is pending, approved, rejected or applied.
	Status string `json:"status"`
}

// Approval is one person's consent to an override.
type Approval struct {
	Actor string       `json:"actor"`
	Role  OperatorRole `json:"role"`
	Time  time.Time    `json:"time"`
}

// Override statuses.
const (
	OverridePending  = "pending"
	OverrideApproved = "approved"
	OverrideRejected = "rejected"
	OverrideApplied  = "applied"
)

// Pause and resume are override actions on an agent, beside the router's.
const (
	ActionPause  Action = "pause"
	ActionResume Action = "resume"
)
