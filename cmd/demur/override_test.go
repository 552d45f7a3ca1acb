package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/override"
	"github.com/demurhq/demur/sqlite"
	"github.com/demurhq/demur/web"
)

// overrideServer serves the override API over a fresh store and returns its
// URL and secrets by owner.
func overrideServer(t *testing.T) (string, map[string]string) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "demur.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc, err := override.New(ctx, override.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{}
	for owner, role := range map[string]demur.OperatorRole{"olga": demur.RoleOperator, "alice": demur.RoleAdmin, "bob": demur.RoleAdmin} {
		s, _, err := svc.Tokens().Issue(ctx, "test", owner, role, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		secrets[owner] = s
	}
	srv := httptest.NewServer(web.Handler(web.Options{Overrides: svc}))
	t.Cleanup(srv.Close)
	return srv.URL, secrets
}

func TestOverrideCLI(t *testing.T) {
	url, sec := overrideServer(t)
	t.Setenv(serverEnv, url)

	t.Setenv(tokenEnv, sec["olga"])
	code, out, errs := runCLI(t, "override", "request", "--job", "job-1", "--action", "pause", "--agent", "agent-02", "--reason", "loops")
	if code != exitOK || !strings.Contains(out, "pause agent agent-02 on job job-1: approved (1 of 1 approvals)") {
		t.Errorf("pause: exit %d: %s%s", code, out, errs)
	}
	// An operator may not force: the server refuses, exit 1.
	code, _, errs = runCLI(t, "override", "request", "--job", "job-1", "--action", "force", "--reason", "x")
	if code != exitProblem || !strings.Contains(errs, "403") {
		t.Errorf("operator force: exit %d: %s", code, errs)
	}

	code, out, errs = runCLI(t, "override", "request", "--token", sec["alice"], "--job", "job-1", "--action", "force", "--task", "c01s01", "--reason", "reviewed", "--json")
	var ov demur.Override
	if code != exitOK || json.Unmarshal([]byte(out), &ov) != nil || ov.Status != demur.OverridePending || ov.Needed != 2 {
		t.Fatalf("admin force: exit %d: %s%s", code, out, errs)
	}
	code, _, errs = runCLI(t, "override", "approve", ov.ID, "--token", sec["alice"], "--reason", "me again")
	if code != exitProblem || !strings.Contains(errs, "409") {
		t.Errorf("self-approval: exit %d: %s", code, errs)
	}
	code, out, errs = runCLI(t, "override", "approve", ov.ID, "--token", sec["bob"], "--reason", "second admin")
	if code != exitOK || !strings.Contains(out, "approved (2 of 2 approvals)") {
		t.Errorf("second admin: exit %d: %s%s", code, out, errs)
	}

	code, out, _ = runCLI(t, "override", "list", "--json", "--job", "job-1")
	var list struct{ Overrides []demur.Override }
	if code != exitOK || json.Unmarshal([]byte(out), &list) != nil || len(list.Overrides) != 2 {
		t.Errorf("list: exit %d: %s", code, out)
	}
	code, out, _ = runCLI(t, "override", "list", "--status", "approved")
	if code != exitOK || !strings.Contains(out, ov.ID) || !strings.Contains(out, "2/2") {
		t.Errorf("table: exit %d: %s", code, out)
	}
}

func TestOverrideCLIErrors(t *testing.T) {
	url, sec := overrideServer(t)
	t.Setenv(serverEnv, url)
	t.Setenv(tokenEnv, "")
	cases := []struct {
		args []string
		code int
	}{
		{[]string{"override", "list"}, exitUsage},                                                                                   // no token
		{[]string{"override", "list", "--token", "dmr_forged"}, exitProblem},                                                        // 401
		{[]string{"override", "list", "--token", sec["olga"], "--server", "ftp://x"}, exitUsage},                                    // bad URL
		{[]string{"override", "request", "--token", sec["olga"], "--job", "j"}, exitUsage},                                          // missing flags
		{[]string{"override", "request", "--token", sec["olga"], "--job", "j", "--action", "escalate", "--reason", "r"}, exitUsage}, // 400
		{[]string{"override", "request", "--token", sec["olga"], "--job", "j", "--action", "pause", "--reason", "r", "--ttl", "5h"}, exitUsage},
		{[]string{"override", "approve", "ovr_0000000000000000", "--token", sec["bob"], "--reason", "r"}, exitUsage}, // 404
		{[]string{"override", "list", "--token", sec["olga"], "--server", "http://127.0.0.1:1"}, exitProblem},        // unreachable
	}
	for _, c := range cases {
		if code, _, errs := runCLI(t, c.args...); code != c.code {
			t.Errorf("%v: exit %d, want %d (%s)", c.args, code, c.code, errs)
		}
	}
}
