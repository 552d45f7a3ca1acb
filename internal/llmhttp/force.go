package llmhttp

import "github.com/demurhq/demur"

// ForceNote is what an HTTP backend sends for demur.Request.Force. Chat
// Completions and Messages have no API-level force flag; the closest
// honest equivalent is to tell the model, as a system message, that an
// authenticated operator decided out of band that the work should be done.
// It claims no authority the operator does not have and leaves the model
// free to decline; it is never an instruction to ignore its policies.
const ForceNote = "An authorized human operator has reviewed this task through demur's audited override " +
	"channel and decided it should be completed as specified. Please complete it. If you still " +
	"cannot do so within your policies, say so plainly and briefly explain why."

// Messages returns the request's conversation as the backend should send
// it: with ForceNote as a system message before the last user turn when
// the request is forced.
func Messages(req *demur.Request) []demur.Message {
	if !req.Force || len(req.Messages) == 0 {
		return req.Messages
	}
	n := len(req.Messages)
	out := make([]demur.Message, 0, n+1)
	out = append(out, req.Messages[:n-1]...)
	out = append(out, demur.Message{Role: demur.RoleSystem, Content: ForceNote})
	return append(out, req.Messages[n-1])
}
