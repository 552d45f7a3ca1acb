package override

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/natsbus"
)

func TestLegitimatePause(t *testing.T) {
	e := newEnv(t, nil)
	op := e.issue("olga", demur.RoleOperator)
	r := e.req("job-1", demur.ActionPause)
	r.Agent = "agent-3"
	code, ov, body := e.request(op, r)
	if code != http.StatusCreated {
		t.Fatalf("status %d: %s", code, body)
	}
	if ov.Status != demur.OverrideApproved || ov.Requester != "olga" || ov.Role != demur.RoleOperator ||
		ov.Needed != 1 || len(ov.Approvals) != 1 || ov.Agent != "agent-3" || ov.Nonce != r.Nonce {
		t.Errorf("override %+v", ov)
	}
	a := e.last()
	if a.Outcome != OutcomeApproved || a.Actor != "olga" || a.Role != demur.RoleOperator ||
		a.Reason != r.Reason || a.Nonce != r.Nonce || a.Override == nil || a.Override.ID != ov.ID || a.HTTPStatus != http.StatusCreated {
		t.Errorf("audit %+v", a)
	}
	if p := e.published(); len(p) != 1 || p[0].ID != ov.ID {
		t.Errorf("published %+v", p)
	}
}

// Force needs two distinct admins; once the second approves, the override
// is broadcast on the job's control subject and handed to the callback,
// and the coordinator can record it applied.
func TestLegitimateTwoPersonForce(t *testing.T) {
	ctx := context.Background()
	bus, err := natsbus.Embedded(ctx, natsbus.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Close() })
	got := make(chan demur.Override, 4)
	unsub, err := bus.Subscribe(fmt.Sprintf(demur.SubjectControl, "job-1"), func(data []byte) {
		var ov demur.Override
		if err := json.Unmarshal(data, &ov); err != nil {
			t.Errorf("control message %s: %v", data, err)
		}
		got <- ov
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	e := newEnv(t, func(o *Options) { o.Bus = bus })
	alice := e.issue("alice", demur.RoleAdmin)
	bob := e.issue("bob", demur.RoleAdmin)
	viewer := e.issue("vic", demur.RoleViewer)

	r := e.req("job-1", demur.ActionForce)
	r.Task = "c03s07"
	code, ov, body := e.request(alice, r)
	if code != http.StatusCreated || ov.Status != demur.OverridePending || ov.Needed != 2 {
		t.Fatalf("request: %d %s", code, body)
	}
	if a := e.last(); a.Outcome != OutcomeAccepted {
		t.Errorf("request outcome %q", a.Outcome)
	}
	select {
	case m := <-got:
		t.Fatalf("pending override broadcast: %+v", m)
	case <-time.After(100 * time.Millisecond):
	}
	if p := e.published(); len(p) != 0 {
		t.Fatalf("pending override published: %+v", p)
	}

	code, ov, body = e.approve(bob, ov.ID, e.ap())
	if code != http.StatusOK || ov.Status != demur.OverrideApproved || len(ov.Approvals) != 2 ||
		ov.Approvals[0].Actor != "alice" || ov.Approvals[1].Actor != "bob" {
		t.Fatalf("approve: %d %s", code, body)
	}
	if a := e.last(); a.Outcome != OutcomeApproved || a.Actor != "bob" || a.Action != demur.ActionForce || a.Task != "c03s07" {
		t.Errorf("approve audit %+v", a)
	}
	select {
	case m := <-got:
		if m.ID != ov.ID || m.Action != demur.ActionForce || m.Status != demur.OverrideApproved || m.Task != "c03s07" {
			t.Errorf("broadcast %+v", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("approved override not broadcast")
	}
	if p := e.published(); len(p) != 1 || p[0].ID != ov.ID {
		t.Errorf("callback got %+v", p)
	}
	// Approving an approved override is refused.
	code, _, _ = e.approve(bob, ov.ID, e.ap())
	e.assertRefused(code, http.StatusConflict, "not pending: approved", "bob")

	// The coordinator's side: find it in the log, record it applied.
	ovs, err := Load(ctx, e.store, "job-1")
	if err != nil || len(ovs) != 1 || ovs[0].Status != demur.OverrideApproved {
		t.Fatalf("load: %v %+v", err, ovs)
	}
	if err := RecordApplied(ctx, e.store, "coordinator", ovs[0]); err != nil {
		t.Fatal(err)
	}
	if err := RecordApplied(ctx, e.store, "coordinator", demur.Override{ID: "x", Status: demur.OverridePending}); err == nil {
		t.Error("recorded a pending override as applied")
	}
	code, _, body = e.do("GET", "/api/overrides?job=job-1", viewer, nil)
	var list struct{ Overrides []demur.Override }
	if err := json.Unmarshal(body, &list); err != nil || code != http.StatusOK {
		t.Fatalf("list: %d %s", code, body)
	}
	if len(list.Overrides) != 1 || list.Overrides[0].Status != demur.OverrideApplied {
		t.Errorf("list %+v", list.Overrides)
	}
	code, _, body = e.do("GET", "/api/overrides?status=pending", viewer, nil)
	if err := json.Unmarshal(body, &list); err != nil || code != http.StatusOK || len(list.Overrides) != 0 {
		t.Errorf("pending list: %d %s", code, body)
	}
	code, _, _ = e.do("GET", "/api/overrides/"+ov.ID, viewer, nil)
	if code != http.StatusOK {
		t.Errorf("get: %d", code)
	}
}

// Requirements are configurable per job and action: three approvals here.
func TestCustomRequirements(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Requirements = func(job string, action demur.Action) (demur.OperatorRole, int) {
			if job == "medical" && action == demur.ActionAccept {
				return demur.RoleOperator, 3
			}
			return DefaultRequirements(job, action)
		}
	})
	a, b, c := e.issue("a", demur.RoleOperator), e.issue("b", demur.RoleAdmin), e.issue("c", demur.RoleOperator)
	_, ov, _ := e.request(a, e.req("medical", demur.ActionAccept))
	if ov.Needed != 3 {
		t.Fatalf("needed %d", ov.Needed)
	}
	if _, ov, _ = e.approve(b, ov.ID, e.ap()); ov.Status != demur.OverridePending {
		t.Fatalf("after two: %+v", ov)
	}
	if a := e.last(); a.Outcome != OutcomeAccepted {
		t.Errorf("second approval outcome %q", a.Outcome)
	}
	if _, ov, _ = e.approve(c, ov.ID, e.ap()); ov.Status != demur.OverrideApproved {
		t.Fatalf("after three: %+v", ov)
	}
}
