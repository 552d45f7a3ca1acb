package override

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/sqlite"
)

// clock is a settable clock shared by a test's services.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is an override service over a real sqlite store, served by httptest.
type env struct {
	t     *testing.T
	path  string
	store *sqlite.Store
	clock *clock
	opts  Options
	svc   *Service
	srv   *httptest.Server

	mu       sync.Mutex
	approved []demur.Override // from OnApproved
	secrets  []string         // every secret issued, for the leak check
}

func newEnv(t *testing.T, tweak func(*Options)) *env {
	t.Helper()
	e := &env{t: t, path: filepath.Join(t.TempDir(), "demur.db"), clock: &clock{t: time.Now().UTC()}}
	st, err := sqlite.Open(context.Background(), e.path)
	if err != nil {
		t.Fatal(err)
	}
	e.store = st
	t.Cleanup(func() { e.store.Close() })
	e.opts = Options{
		Store: st, Now: e.clock.Now, RateBurst: 1000,
		OnApproved: func(ov demur.Override) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.approved = append(e.approved, ov)
		},
	}
	if tweak != nil {
		tweak(&e.opts)
	}
	e.start()
	return e
}

// start (re)creates the service and its server, as a process restart would.
func (e *env) start() {
	e.t.Helper()
	if e.srv != nil {
		e.srv.Close()
	}
	svc, err := New(context.Background(), e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.svc = svc
	e.srv = httptest.NewServer(svc.Handler())
	e.t.Cleanup(e.srv.Close)
}

// restart closes the store and starts over from the file, as a new
// process would.
func (e *env) restart() {
	e.t.Helper()
	e.srv.Close()
	if err := e.store.Close(); err != nil {
		e.t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), e.path)
	if err != nil {
		e.t.Fatal(err)
	}
	e.store, e.opts.Store = st, st
	e.start()
}

func (e *env) issue(owner string, role demur.OperatorRole) string {
	e.t.Helper()
	secret, _, err := e.svc.Tokens().Issue(context.Background(), "test", owner, role, 24*time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	e.secrets = append(e.secrets, secret)
	return secret
}

// do sends body (a string is sent verbatim, anything else as JSON).
func (e *env) do(method, path, secret string, body any) (int, http.Header, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, data
}

func (e *env) request(secret string, req Request) (int, demur.Override, []byte) {
	e.t.Helper()
	code, _, data := e.do("POST", "/api/overrides", secret, req)
	var ov demur.Override
	if code < 300 {
		if err := json.Unmarshal(data, &ov); err != nil {
			e.t.Fatalf("decode override %s: %v", data, err)
		}
	}
	return code, ov, data
}

func (e *env) approve(secret, id string, ap Approve) (int, demur.Override, []byte) {
	e.t.Helper()
	code, _, data := e.do("POST", "/api/overrides/"+id+"/approve", secret, ap)
	var ov demur.Override
	if code < 300 {
		if err := json.Unmarshal(data, &ov); err != nil {
			e.t.Fatalf("decode override %s: %v", data, err)
		}
	}
	return code, ov, data
}

func (e *env) attempts() []Attempt {
	e.t.Helper()
	recs, err := e.store.Records(context.Background(), demur.Query{Stream: Stream})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []Attempt
	for _, r := range recs {
		var a Attempt
		if err := json.Unmarshal(r.Payload, &a); err != nil {
			e.t.Fatalf("record %d: %v", r.Seq, err)
		}
		if r.Actor != a.Actor || r.Kind != demur.RecOverride {
			e.t.Errorf("record %d: actor %q kind %q, payload actor %q", r.Seq, r.Actor, r.Kind, a.Actor)
		}
		out = append(out, a)
	}
	return out
}

func (e *env) last() Attempt {
	e.t.Helper()
	as := e.attempts()
	if len(as) == 0 {
		e.t.Fatal("no override records")
	}
	return as[len(as)-1]
}

// published returns what OnApproved has received.
func (e *env) published() []demur.Override {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]demur.Override(nil), e.approved...)
}

// assertNothingApproved checks that no override is approved or applied,
// in the log or through the callback.
func (e *env) assertNothingApproved() {
	e.t.Helper()
	ovs, err := Load(context.Background(), e.store, "")
	if err != nil {
		e.t.Fatal(err)
	}
	for _, ov := range ovs {
		if ov.Status == demur.OverrideApproved || ov.Status == demur.OverrideApplied {
			e.t.Errorf("override %s %s is %s", ov.ID, ov.Action, ov.Status)
		}
	}
	if p := e.published(); len(p) > 0 {
		e.t.Errorf("published %d overrides: %+v", len(p), p)
	}
}

// assertRefused checks that the last attempt was refused with status and an
// outcome containing why, by actor.
func (e *env) assertRefused(code, want int, why, actor string) Attempt {
	e.t.Helper()
	if code != want {
		e.t.Errorf("status %d, want %d", code, want)
	}
	a := e.last()
	if !strings.HasPrefix(a.Outcome, OutcomeRejectedPrefix) || !strings.Contains(a.Outcome, why) {
		e.t.Errorf("outcome %q, want rejected: …%s…", a.Outcome, why)
	}
	if a.HTTPStatus != want {
		e.t.Errorf("recorded status %d, want %d", a.HTTPStatus, want)
	}
	if a.Actor != actor {
		e.t.Errorf("recorded actor %q, want %q", a.Actor, actor)
	}
	if a.Remote == "" {
		e.t.Error("no remote address recorded")
	}
	return a
}

func nonce() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return fmt.Sprintf("n-%x", b)
}

func (e *env) req(job string, action demur.Action) Request {
	return Request{Job: job, Action: action, Reason: "test: " + string(action), Nonce: nonce(), Expires: e.clock.Now().Add(10 * time.Minute)}
}

func (e *env) ap() Approve {
	return Approve{Reason: "looked at it", Nonce: nonce(), Expires: e.clock.Now().Add(10 * time.Minute)}
}
