package demur

import (
	"strings"
	"testing"
	"time"
)

func TestSealChainsAndDetectsChange(t *testing.T) {
	a := &Record{Seq: 1, Time: time.Unix(1, 5).UTC(), Job: "j", Stream: "j", Kind: RecTurn, Actor: "x", Payload: []byte(`{"a":1}`)}
	a.Seal("")
	b := &Record{Seq: 2, Time: a.Time, Job: "j", Stream: "j", Kind: RecVerdict, Actor: "x", Payload: []byte(`{}`)}
	b.Seal(a.Hash)
	if b.PrevHash != a.Hash || len(a.Hash) != 64 || a.Hash == b.Hash {
		t.Fatalf("chain: %s → %s", a.Hash, b.PrevHash)
	}
	a.Payload = []byte(`{"a":2}`)
	if a.ComputeHash() == a.Hash {
		t.Fatal("a changed payload kept its hash")
	}
	// Length prefixes keep field boundaries: moving a byte between fields
	// changes the hash.
	x := &Record{Job: "ab", Stream: "c"}
	y := &Record{Job: "a", Stream: "bc"}
	if x.ComputeHash() == y.ComputeHash() {
		t.Fatal("field boundaries are not hashed")
	}
	if got := string(a.AppendCanonical(nil)); got != string(a.Canonical()) || !strings.HasPrefix(got[1:], CanonicalVersion) {
		t.Fatalf("canonical encoding does not start with its version: %q", got[:20])
	}
}

func TestValidate(t *testing.T) {
	ok := &Record{Stream: "s", Job: "j", Kind: RecTurn}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Record{
		{Job: "j"},
		{Stream: "s", Actor: "a\x00b"},
		{Stream: "s", Job: "\xff"},
		{Stream: "s", Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if r.Validate() == nil {
			t.Errorf("accepted %+v", r)
		}
	}
}

func TestRoles(t *testing.T) {
	if !RoleAdmin.Allows(RoleOperator) || RoleViewer.Allows(RoleOperator) || RoleAdmin.Allows("") || OperatorRole("root").Allows(RoleViewer) {
		t.Fatal("role order is wrong")
	}
}

func TestDetachAndSettle(t *testing.T) {
	if _, err := DetachForAppend([]*Record{{Stream: "s"}, nil}); err == nil {
		t.Fatal("a nil record was accepted")
	}
	r := &Record{Stream: "s"}
	copies, err := DetachForAppend([]*Record{r})
	if err != nil {
		t.Fatal(err)
	}
	copies[0].Seq, copies[0].Hash = 7, "h"
	if r.Seq != 0 {
		t.Fatal("the store's copy aliases the caller's record")
	}
	SettleAppend([]*Record{r}, copies)
	if r.Seq != 7 || r.Hash != "h" {
		t.Fatalf("settled %+v", r)
	}
}
