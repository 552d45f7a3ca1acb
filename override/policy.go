package override

import "github.com/demurhq/demur"

// Requirements says who may request action on job: the least role, and how
// many distinct people (requester included) must approve before the override
// takes effect. A zero role means the action cannot be requested at all.
type Requirements func(job string, action demur.Action) (role demur.OperatorRole, approvals int)

// DefaultRequirements is the policy when none is configured: operators may
// pause, resume, accept, retry, refresh or reassign on their own; forcing a
// section past a refusal or aborting work needs two distinct admins. Every
// other action, including the router-only ones (reframe, escalate, …), is
// not an override.
func DefaultRequirements(_ string, action demur.Action) (demur.OperatorRole, int) {
	switch action {
	case demur.ActionPause, demur.ActionResume, demur.ActionAccept, demur.ActionRetry,
		demur.ActionRefreshContext, demur.ActionReassign:
		return demur.RoleOperator, 1
	case demur.ActionForce, demur.ActionAbort:
		return demur.RoleAdmin, 2
	}
	return "", 0
}
