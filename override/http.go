package override

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/demurhq/demur"
)

// Field limits. They keep audit records small and job IDs usable in bus
// subjects (no dots or wildcards).
const (
	maxReason = 2000
	minNonce  = 16
	maxNonce  = 128
)

var (
	jobRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`)
	refRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
	nonceRE = regexp.MustCompile(`^[A-Za-z0-9._~-]+$`)
	idRE    = regexp.MustCompile(`^ovr_[0-9a-f]{16}$`)
)

// Request is the body of POST /api/overrides.
type Request struct {
	Job    string       `json:"job"`
	Action demur.Action `json:"action"`
	Task   string       `json:"task,omitempty"`
	Agent  string       `json:"agent,omitempty"`
	Reason string       `json:"reason"`
	// Nonce is 16-128 characters of A-Z a-z 0-9 . _ ~ -, never reused
	// with the same token.
	Nonce string `json:"nonce"`
	// Expires bounds the request's validity (at most MaxExpiry ahead) and
	// the window in which the override can collect its approvals.
	Expires time.Time `json:"expires"`
}

// Approve is the body of POST /api/overrides/{id}/approve.
type Approve struct {
	Reason  string    `json:"reason"`
	Nonce   string    `json:"nonce"`
	Expires time.Time `json:"expires"`
}

// Error is the body of every refusal.
type Error struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
}

// Handler returns the override API:
//
//	POST /api/overrides               request an override   (operator+)
//	POST /api/overrides/{id}/approve  approve one           (the role it needs)
//	GET  /api/overrides               list (?job=, ?status=) (viewer+)
//	GET  /api/overrides/{id}          one override           (viewer+)
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/overrides", s.handleRequest)
	mux.HandleFunc("POST /api/overrides/{id}/approve", s.handleApprove)
	mux.HandleFunc("GET /api/overrides", s.handleList)
	mux.HandleFunc("GET /api/overrides/{id}", s.handleGet)
	return mux
}

// refusal is a refused attempt: the HTTP status, the public message, and
// the detail that only the audit log gets.
type refusal struct {
	status int
	public string
	detail string
}

func refuse(status int, public, detail string) *refusal {
	return &refusal{status: status, public: public, detail: detail}
}

// begin authenticates and rate-limits r, filling a with who is asking. On a
// refusal it has already recorded the attempt and answered the client.
func (s *Service) begin(w http.ResponseWriter, r *http.Request, a *Attempt, need demur.OperatorRole) (Token, bool) {
	a.Actor = "anonymous"
	a.Remote = r.RemoteAddr
	var tok Token
	bearer, err := bearerToken(r)
	if err == nil {
		tok, err = s.tokens.Authenticate(r.Context(), bearer)
	}
	if tok.ID != "" {
		// Known but expired or revoked tokens still name who tried.
		a.Actor, a.TokenID, a.Role = tok.Owner, tok.ID, tok.Role
	}
	if err != nil {
		key := tok.ID
		if key == "" {
			key = "addr:" + remoteHost(r)
		}
		if !s.allow(w, key) {
			s.fail(w, r, a, refuse(http.StatusTooManyRequests, "rate limit exceeded", "rate limited"))
			return Token{}, false
		}
		var rf *refusal
		switch {
		case errors.Is(err, ErrNoToken), errors.Is(err, ErrMalformedToken), errors.Is(err, ErrUnknownToken),
			errors.Is(err, ErrTokenExpired), errors.Is(err, ErrTokenRevoked):
			// One answer for every kind of bad token: a prober learns nothing.
			w.Header().Set("WWW-Authenticate", `Bearer realm="demur", error="invalid_token"`)
			if errors.Is(err, ErrNoToken) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="demur"`)
			}
			rf = refuse(http.StatusUnauthorized, "a valid bearer token is required", "unauthenticated: "+err.Error())
		default:
			rf = refuse(http.StatusInternalServerError, "internal error", "authentication failed: "+err.Error())
		}
		s.fail(w, r, a, rf)
		return Token{}, false
	}
	if !s.allow(w, tok.ID) {
		s.fail(w, r, a, refuse(http.StatusTooManyRequests, "rate limit exceeded", "rate limited"))
		return Token{}, false
	}
	if !tok.Role.Allows(need) {
		s.fail(w, r, a, refuse(http.StatusForbidden, fmt.Sprintf("role %s required", need),
			fmt.Sprintf("role %s lacks %s", tok.Role, need)))
		return Token{}, false
	}
	return tok, true
}

// allow takes one event from key's limiter, or sets Retry-After and says no.
func (s *Service) allow(w http.ResponseWriter, key string) bool {
	res := s.limiter(key).ReserveN(s.opts.Now(), 1)
	if !res.OK() {
		w.Header().Set("Retry-After", "60")
		return false
	}
	if d := res.DelayFrom(s.opts.Now()); d > 0 {
		res.CancelAt(s.opts.Now())
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(d.Seconds()))))
		return false
	}
	return true
}

// fail records a refused attempt and answers the client.
func (s *Service) fail(w http.ResponseWriter, r *http.Request, a *Attempt, rf *refusal) {
	s.recordRefusal(context.WithoutCancel(r.Context()), a, rf)
	writeJSON(w, rf.status, Error{Error: rf.public, Status: rf.status})
}

// recordRefusal appends a refused attempt. A failure is only logged: the
// refusal stands either way, since refusing is the safe direction.
func (s *Service) recordRefusal(ctx context.Context, a *Attempt, rf *refusal) {
	a.Outcome = OutcomeRejectedPrefix + rf.detail
	a.HTTPStatus = rf.status
	if err := s.record(ctx, a); err != nil {
		s.log.Error("override: audit refused attempt", "outcome", a.Outcome, "err", err)
	}
}

// readBody reads a JSON body of at most MaxBody bytes.
func (s *Service) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *refusal) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return nil, refuse(http.StatusUnsupportedMediaType, "Content-Type must be application/json", "unsupported content type")
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, refuse(http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", s.opts.MaxBody), "body too large")
		}
		return nil, refuse(http.StatusBadRequest, "cannot read body", "unreadable body")
	}
	return body, nil
}

// decode parses body into v strictly: one JSON object, no unknown fields
// (so "status", "approvals" or "needed" cannot be smuggled in), nothing
// after it.
func decode(body []byte, v any) *refusal {
	if !utf8.Valid(body) {
		return refuse(http.StatusBadRequest, "body is not UTF-8", "malformed body: not UTF-8")
	}
	if rf := checkKeys(body); rf != nil {
		return rf
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if strings.HasPrefix(err.Error(), "json: unknown field") {
			return refuse(http.StatusBadRequest, err.Error(), "unknown field: "+clip(strings.TrimPrefix(err.Error(), "json: unknown field "), 100))
		}
		return refuse(http.StatusBadRequest, "malformed JSON body", "malformed body: "+clip(err.Error(), 200))
	}
	if _, err := dec.Token(); err != io.EOF {
		return refuse(http.StatusBadRequest, "malformed JSON body: data after the object", "malformed body: trailing data")
	}
	return nil
}

// checkFreshness validates the nonce and expiry shared by both bodies.
// Callers hold mu (the nonce check must not race its own recording).
// checkKeys refuses a body whose top-level object repeats a key. Go's
// decoder would keep the last of {"action":"pause","action":"force"} and
// match keys regardless of case; refusing the ambiguity means what a person
// reviewing the audit log reads is what was decided.
func checkKeys(body []byte) *refusal {
	dec := json.NewDecoder(bytes.NewReader(body))
	seen := map[string]bool{}
	depth := 0
	expectKey := false
	for {
		t, err := dec.Token()
		if err != nil {
			// Syntax errors are reported by the real decode.
			return nil
		}
		switch v := t.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				depth++
				expectKey = v == '{' && depth == 1
			case '}', ']':
				depth--
				if depth == 0 {
					// What follows the object is decode's business.
					return nil
				}
				expectKey = depth == 1
			}
			continue
		case string:
			if depth == 1 && expectKey {
				k := strings.ToLower(v)
				if seen[k] {
					return refuse(http.StatusBadRequest, fmt.Sprintf("duplicate field %q", v), "malformed body: duplicate field "+clip(v, 64))
				}
				seen[k] = true
				expectKey = false
				continue
			}
		}
		if depth == 1 {
			expectKey = true
		}
		if depth == 0 {
			return nil
		}
	}
}

func (s *Service) checkFreshness(tok Token, nonce string, expires time.Time) *refusal {
	now := s.opts.Now()
	switch {
	case len(nonce) < minNonce || len(nonce) > maxNonce || !nonceRE.MatchString(nonce):
		return refuse(http.StatusBadRequest, fmt.Sprintf("nonce must be %d-%d characters of A-Z a-z 0-9 . _ ~ -", minNonce, maxNonce), "bad nonce")
	case expires.IsZero():
		return refuse(http.StatusBadRequest, "expires is required", "no expiry")
	case !now.Before(expires):
		return refuse(http.StatusBadRequest, "request expired", "request expired")
	case expires.After(now.Add(s.opts.MaxExpiry + clockSkew)):
		return refuse(http.StatusBadRequest, fmt.Sprintf("expires more than %v ahead", s.opts.MaxExpiry), "expiry too far ahead")
	}
	if _, seen := s.nonces[nonceKey(tok.ID, nonce)]; seen {
		return refuse(http.StatusConflict, "nonce already used", "replayed nonce")
	}
	return nil
}

func checkReason(reason string) *refusal {
	switch {
	case strings.TrimSpace(reason) == "":
		return refuse(http.StatusBadRequest, "reason is required", "no reason")
	case len(reason) > maxReason:
		return refuse(http.StatusBadRequest, fmt.Sprintf("reason longer than %d bytes", maxReason), "reason too long")
	case strings.IndexFunc(reason, hiddenRune) >= 0:
		return refuse(http.StatusBadRequest, "reason contains control or bidirectional-override characters", "reason has control characters")
	}
	return nil
}

// hiddenRune reports runes that could make a reason display as something it
// is not — terminal escapes in `demur override list`, or reordered text
// (bidirectional overrides) in a reviewer's view of the audit log.
func hiddenRune(r rune) bool {
	switch r {
	case '\n', '\r', '\t':
		return false
	case '\u061c', '\u200e', '\u200f':
		return true
	}
	return unicode.IsControl(r) || (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069')
}

func (s *Service) handleRequest(w http.ResponseWriter, r *http.Request) {
	a := &Attempt{Endpoint: "request"}
	tok, ok := s.begin(w, r, a, demur.RoleOperator)
	if !ok {
		return
	}
	body, rf := s.readBody(w, r)
	if rf != nil {
		s.fail(w, r, a, rf)
		return
	}
	var req Request
	if rf := decode(body, &req); rf != nil {
		s.fail(w, r, a, rf)
		return
	}
	a.Action, a.Job, a.Task, a.Agent = req.Action, clip(req.Job, 128), clip(req.Task, 128), clip(req.Agent, 128)
	a.Reason, a.Nonce, a.Expires = clip(req.Reason, maxReason), clip(req.Nonce, maxNonce), req.Expires

	s.mu.Lock()
	ov, rf, err := s.decideRequest(r.Context(), tok, req)
	if ov.ID != "" {
		a.OverrideID = ov.ID
	}
	s.settle(w, r, a, ov, rf, err, http.StatusCreated)
}

// decideRequest validates req from tok and returns the new override.
// Callers hold mu.
func (s *Service) decideRequest(ctx context.Context, tok Token, req Request) (demur.Override, *refusal, error) {
	if err := s.catchUp(ctx); err != nil {
		return demur.Override{}, nil, err
	}
	if rf := s.checkFreshness(tok, req.Nonce, req.Expires); rf != nil {
		return demur.Override{}, rf, nil
	}
	if rf := checkReason(req.Reason); rf != nil {
		return demur.Override{}, rf, nil
	}
	if !jobRE.MatchString(req.Job) {
		return demur.Override{}, refuse(http.StatusBadRequest, "job must be 1-128 characters of A-Z a-z 0-9 _ -", "bad job"), nil
	}
	if req.Task != "" && !refRE.MatchString(req.Task) {
		return demur.Override{}, refuse(http.StatusBadRequest, "task must be 1-128 characters of A-Z a-z 0-9 . _ : -", "bad task"), nil
	}
	if req.Agent != "" && !refRE.MatchString(req.Agent) {
		return demur.Override{}, refuse(http.StatusBadRequest, "agent must be 1-128 characters of A-Z a-z 0-9 . _ : -", "bad agent"), nil
	}
	need, approvals := s.opts.Requirements(req.Job, req.Action)
	if !need.Allows(demur.RoleViewer) {
		return demur.Override{}, refuse(http.StatusBadRequest, fmt.Sprintf("%q is not an override action", req.Action), "not an override action"), nil
	}
	if !tok.Role.Allows(need) {
		return demur.Override{}, refuse(http.StatusForbidden, fmt.Sprintf("role %s required for %s", need, req.Action),
			fmt.Sprintf("role %s may not request %s (needs %s)", tok.Role, req.Action, need)), nil
	}
	id, err := newOverrideID()
	if err != nil {
		return demur.Override{}, nil, err
	}
	now := s.opts.Now().UTC()
	ov := demur.Override{
		ID: id, Job: req.Job, Action: req.Action, Task: req.Task, Agent: req.Agent, Reason: req.Reason,
		Requester: tok.Owner, Role: tok.Role, Nonce: req.Nonce, Expires: req.Expires.UTC(), Created: now,
		// The requester holds the role the action needs (checked above),
		// so the request is their approval.
		Approvals: []demur.Approval{{Actor: tok.Owner, Role: tok.Role, Time: now}},
		Needed:    max(approvals, 1),
		Status:    demur.OverridePending,
	}
	if len(ov.Approvals) >= ov.Needed {
		ov.Status = demur.OverrideApproved
	}
	return ov, nil, nil
}

// settle finishes a decision made under mu, which it releases: it records
// the attempt (accepted or refused) while still holding mu, so the nonce it
// spends is folded before the next decision, then answers the client and,
// once the override is durable, publishes it if approved.
func (s *Service) settle(w http.ResponseWriter, r *http.Request, a *Attempt, ov demur.Override, rf *refusal, err error, okStatus int) {
	ctx := context.WithoutCancel(r.Context())
	if err == nil && rf == nil {
		a.Override = &ov
		a.Outcome, a.HTTPStatus = OutcomeAccepted, okStatus
		if ov.Status == demur.OverrideApproved {
			a.Outcome = OutcomeApproved
		}
		if err = s.record(ctx, a); err == nil {
			err = s.catchUp(ctx)
		}
	} else if err == nil {
		s.recordRefusal(ctx, a, rf)
		if err := s.catchUp(ctx); err != nil {
			s.log.Error("override: catch up", "err", err)
		}
	}
	s.mu.Unlock()
	switch {
	case err != nil:
		s.log.Error("override: "+a.Endpoint, "err", err)
		writeJSON(w, http.StatusInternalServerError, Error{Error: "internal error", Status: http.StatusInternalServerError})
	case rf != nil:
		writeJSON(w, rf.status, Error{Error: rf.public, Status: rf.status})
	default:
		if ov.Status == demur.OverrideApproved {
			s.publish(ov)
		}
		writeJSON(w, okStatus, ov)
	}
}

func (s *Service) handleApprove(w http.ResponseWriter, r *http.Request) {
	a := &Attempt{Endpoint: "approve", OverrideID: clip(r.PathValue("id"), 64)}
	tok, ok := s.begin(w, r, a, demur.RoleOperator)
	if !ok {
		return
	}
	body, rf := s.readBody(w, r)
	if rf != nil {
		s.fail(w, r, a, rf)
		return
	}
	var req Approve
	if rf := decode(body, &req); rf != nil {
		s.fail(w, r, a, rf)
		return
	}
	a.Reason, a.Nonce, a.Expires = clip(req.Reason, maxReason), clip(req.Nonce, maxNonce), req.Expires

	s.mu.Lock()
	ov, rf, err := s.decideApprove(r.Context(), tok, r.PathValue("id"), req)
	if ov.ID != "" {
		a.Action, a.Job, a.Task, a.Agent = ov.Action, ov.Job, ov.Task, ov.Agent
	}
	s.settle(w, r, a, ov, rf, err, http.StatusOK)
}

// decideApprove validates tok's approval of override id and returns the
// override's new state; on a refusal the returned override (if found) only
// names what was targeted. Callers hold mu.
func (s *Service) decideApprove(ctx context.Context, tok Token, id string, req Approve) (demur.Override, *refusal, error) {
	if err := s.catchUp(ctx); err != nil {
		return demur.Override{}, nil, err
	}
	if rf := s.checkFreshness(tok, req.Nonce, req.Expires); rf != nil {
		return demur.Override{}, rf, nil
	}
	if rf := checkReason(req.Reason); rf != nil {
		return demur.Override{}, rf, nil
	}
	stored, ok := s.overrides[id]
	if !idRE.MatchString(id) || !ok {
		return demur.Override{}, refuse(http.StatusNotFound, "no such override", "no such override"), nil
	}
	now := s.opts.Now()
	ov := current(*stored, now)
	if ov.Status != demur.OverridePending {
		return ov, refuse(http.StatusConflict, fmt.Sprintf("override is %s", ov.Status), "override not pending: "+ov.Status), nil
	}
	need, _ := s.opts.Requirements(ov.Job, ov.Action)
	if !need.Allows(demur.RoleViewer) {
		// The policy changed since the request; nobody can approve now.
		return ov, refuse(http.StatusForbidden, fmt.Sprintf("%s is no longer an override action", ov.Action), "action no longer allowed"), nil
	}
	if !tok.Role.Allows(need) {
		return ov, refuse(http.StatusForbidden, fmt.Sprintf("role %s required to approve %s", need, ov.Action),
			fmt.Sprintf("role %s may not approve %s (needs %s)", tok.Role, ov.Action, need)), nil
	}
	for _, ap := range ov.Approvals {
		// Identity is the owner name, not the token: a person with two
		// tokens is still one person.
		if strings.EqualFold(ap.Actor, tok.Owner) {
			return ov, refuse(http.StatusConflict, "you have already approved this override", "same person approving twice"), nil
		}
	}
	ov.Approvals = append(ov.Approvals, demur.Approval{Actor: tok.Owner, Role: tok.Role, Time: now.UTC()})
	if len(ov.Approvals) >= ov.Needed {
		ov.Status = demur.OverrideApproved
	}
	return ov, nil, nil
}

func (s *Service) handleList(w http.ResponseWriter, r *http.Request) {
	a := &Attempt{Endpoint: "list"}
	if _, ok := s.begin(w, r, a, demur.RoleViewer); !ok {
		return
	}
	job, status := r.URL.Query().Get("job"), r.URL.Query().Get("status")
	ovs, err := s.Overrides(r.Context(), job)
	if err != nil {
		s.log.Error("override: list", "err", err)
		writeJSON(w, http.StatusInternalServerError, Error{Error: "internal error", Status: http.StatusInternalServerError})
		return
	}
	if status != "" {
		kept := ovs[:0]
		for _, ov := range ovs {
			if ov.Status == status {
				kept = append(kept, ov)
			}
		}
		ovs = kept
	}
	writeJSON(w, http.StatusOK, struct {
		Overrides []demur.Override `json:"overrides"`
	}{ovs})
}

func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) {
	a := &Attempt{Endpoint: "get", OverrideID: clip(r.PathValue("id"), 64)}
	if _, ok := s.begin(w, r, a, demur.RoleViewer); !ok {
		return
	}
	ovs, err := s.Overrides(r.Context(), "")
	if err != nil {
		s.log.Error("override: get", "err", err)
		writeJSON(w, http.StatusInternalServerError, Error{Error: "internal error", Status: http.StatusInternalServerError})
		return
	}
	for _, ov := range ovs {
		if ov.ID == r.PathValue("id") {
			writeJSON(w, http.StatusOK, ov)
			return
		}
	}
	writeJSON(w, http.StatusNotFound, Error{Error: "no such override", Status: http.StatusNotFound})
}

// bearerToken returns the secret of the request's one Authorization header.
func bearerToken(r *http.Request) (string, error) {
	hs := r.Header.Values("Authorization")
	switch len(hs) {
	case 0:
		return "", ErrNoToken
	case 1:
	default:
		return "", ErrMalformedToken
	}
	scheme, secret, ok := strings.Cut(hs[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", ErrMalformedToken
	}
	return strings.TrimSpace(secret), nil
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// clip bounds an untrusted string before it goes into the audit log.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) && len(s) > 0 {
		s = s[:len(s)-1]
	}
	return s + "…"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
