package llmhttp

import (
	"testing"

	"github.com/demurhq/demur"
)

func TestMessagesForce(t *testing.T) {
	req := &demur.Request{Messages: []demur.Message{{Role: demur.RoleSystem, Content: "s"}, {Role: demur.RoleUser, Content: "u"}}}
	if got := Messages(req); len(got) != 2 {
		t.Fatalf("unforced request changed: %+v", got)
	}
	req.Force = true
	got := Messages(req)
	if len(got) != 3 || got[1].Content != ForceNote || got[1].Role != demur.RoleSystem || got[2].Content != "u" {
		t.Fatalf("forced: %+v", got)
	}
	if len(req.Messages) != 2 {
		t.Fatal("Messages modified the request")
	}
}
