package override

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/demurhq/demur"
)

// TokenStream is the audit-log stream that holds token events (kind
// demur.RecToken): issues and revocations, with the secret's hash only.
const TokenStream = "tokens"

// SecretPrefix starts every token secret, so that a leaked secret is easy to
// recognise in logs and by secret scanners.
const SecretPrefix = "dmr_"

// secretBytes is the secret's entropy: 256 random bits.
const secretBytes = 32

// idLen is how many hex digits of the secret's hash name the token. 48 bits
// keep accidental collisions out of reach for any realistic number of
// tokens, and Issue refuses a collision anyway.
const idLen = 12

// Token is an operator credential as stored: never the secret, only its
// SHA-256.
type Token struct {
	// ID is the first 12 hex digits of Hash: derivable from the secret, so
	// a bearer can be looked up without the secret being stored.
	ID    string             `json:"id"`
	Owner string             `json:"owner"`
	Role  demur.OperatorRole `json:"role"`
	// Hash is the hex SHA-256 of the secret.
	Hash    string    `json:"hash"`
	Issued  time.Time `json:"issued"`
	Expires time.Time `json:"expires"`
	// Revoked is when the token was revoked; zero while it is not.
	Revoked time.Time `json:"revoked,omitzero"`
}

// Status is "active", "expired" or "revoked" at now.
func (t Token) Status(now time.Time) string {
	switch {
	case !t.Revoked.IsZero():
		return "revoked"
	case !now.Before(t.Expires):
		return "expired"
	}
	return "active"
}

// tokenEvent is the payload of a RecToken record.
type tokenEvent struct {
	Op string `json:"op"` // "issue" or "revoke"
	Token
}

// Authentication failures. The HTTP layer answers all of them with the same
// 401 so that a prober learns nothing; the audit record keeps the detail.
var (
	ErrNoToken        = errors.New("no bearer token")
	ErrMalformedToken = errors.New("malformed token")
	ErrUnknownToken   = errors.New("unknown token")
	ErrTokenExpired   = errors.New("token expired")
	ErrTokenRevoked   = errors.New("token revoked")
)

var ownerRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._@-]{0,63}$`)

// NormalizeOwner returns owner in the canonical form used as a person's
// identity (lower case), or an error if it is not a plain ASCII name: two
// approvals count as distinct only if their owners differ, so look-alike
// spellings must not pass as different people.
func NormalizeOwner(owner string) (string, error) {
	o := strings.ToLower(strings.TrimSpace(owner))
	if !ownerRE.MatchString(o) {
		return "", fmt.Errorf("owner %q: want 1-64 characters of a-z 0-9 . _ @ -, starting with a letter or digit", owner)
	}
	return o, nil
}

// ParseRole returns the role named s.
func ParseRole(s string) (demur.OperatorRole, error) {
	r := demur.OperatorRole(strings.ToLower(strings.TrimSpace(s)))
	if !r.Allows(demur.RoleViewer) {
		return "", fmt.Errorf("role %q: want viewer, operator or admin", s)
	}
	return r, nil
}

// Tokens is the token registry, event-sourced in the TokenStream of a store.
// Every read first catches up with the stream, so a token revoked by another
// process (the CLI) is refused from the next request on. It is safe for
// concurrent use.
type Tokens struct {
	store demur.Store
	now   func() time.Time

	mu      sync.Mutex
	lastSeq int64
	byID    map[string]*Token
}

// NewTokens returns the registry over store; now is the clock (nil means
// time.Now).
func NewTokens(store demur.Store, now func() time.Time) *Tokens {
	if now == nil {
		now = time.Now
	}
	return &Tokens{store: store, now: now, byID: map[string]*Token{}}
}

// catchUp folds token records appended since the last read. Callers hold mu.
func (ts *Tokens) catchUp(ctx context.Context) error {
	recs, err := ts.store.Records(ctx, demur.Query{Stream: TokenStream, AfterSeq: ts.lastSeq})
	if err != nil {
		return fmt.Errorf("read tokens: %w", err)
	}
	for _, r := range recs {
		ts.lastSeq = r.Seq
		if r.Kind != demur.RecToken {
			continue
		}
		var ev tokenEvent
		if err := json.Unmarshal(r.Payload, &ev); err != nil {
			// A record we cannot read grants nothing; skipping it is the
			// safe direction (an unreadable revoke would be the risk, and
			// revoke records are written by this package only).
			continue
		}
		switch ev.Op {
		case "issue":
			if _, dup := ts.byID[ev.ID]; !dup {
				t := ev.Token
				ts.byID[t.ID] = &t
			}
		case "revoke":
			if t, ok := ts.byID[ev.ID]; ok && t.Revoked.IsZero() {
				t.Revoked = ev.Revoked
				if t.Revoked.IsZero() {
					t.Revoked = r.Time
				}
			}
		}
	}
	return nil
}

// Issue creates a token for owner with role, valid for ttl, and returns its
// secret. The secret is not stored anywhere: show it once.
func (ts *Tokens) Issue(ctx context.Context, actor, owner string, role demur.OperatorRole, ttl time.Duration) (string, Token, error) {
	owner, err := NormalizeOwner(owner)
	if err != nil {
		return "", Token{}, fmt.Errorf("issue token: %w", err)
	}
	if !role.Allows(demur.RoleViewer) {
		return "", Token{}, fmt.Errorf("issue token: role %q: want viewer, operator or admin", role)
	}
	if ttl <= 0 {
		return "", Token{}, fmt.Errorf("issue token: ttl %v: must be positive", ttl)
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if err := ts.catchUp(ctx); err != nil {
		return "", Token{}, fmt.Errorf("issue token: %w", err)
	}
	var secret, hash string
	for {
		b := make([]byte, secretBytes)
		if _, err := rand.Read(b); err != nil {
			return "", Token{}, fmt.Errorf("issue token: random: %w", err)
		}
		secret = SecretPrefix + base64.RawURLEncoding.EncodeToString(b)
		hash = hashSecret(secret)
		if _, taken := ts.byID[hash[:idLen]]; !taken {
			break
		}
	}
	now := ts.now().UTC()
	t := Token{ID: hash[:idLen], Owner: owner, Role: role, Hash: hash, Issued: now, Expires: now.Add(ttl)}
	if err := ts.append(ctx, actor, tokenEvent{Op: "issue", Token: t}); err != nil {
		return "", Token{}, fmt.Errorf("issue token: %w", err)
	}
	if err := ts.catchUp(ctx); err != nil {
		return "", Token{}, fmt.Errorf("issue token: %w", err)
	}
	return secret, t, nil
}

// Revoke revokes the token id; revoking a revoked token is a no-op.
func (ts *Tokens) Revoke(ctx context.Context, actor, id string) (Token, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if err := ts.catchUp(ctx); err != nil {
		return Token{}, fmt.Errorf("revoke token %s: %w", id, err)
	}
	t, ok := ts.byID[id]
	if !ok {
		return Token{}, fmt.Errorf("revoke token %s: %w", id, demur.ErrNotFound)
	}
	if !t.Revoked.IsZero() {
		return *t, nil
	}
	ev := tokenEvent{Op: "revoke", Token: Token{ID: id, Owner: t.Owner, Role: t.Role, Revoked: ts.now().UTC()}}
	if err := ts.append(ctx, actor, ev); err != nil {
		return Token{}, fmt.Errorf("revoke token %s: %w", id, err)
	}
	if err := ts.catchUp(ctx); err != nil {
		return Token{}, fmt.Errorf("revoke token %s: %w", id, err)
	}
	return *ts.byID[id], nil
}

// List returns every token ever issued, oldest first.
func (ts *Tokens) List(ctx context.Context) ([]Token, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if err := ts.catchUp(ctx); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	out := make([]Token, 0, len(ts.byID))
	for _, t := range ts.byID {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Issued.Equal(out[j].Issued) {
			return out[i].Issued.Before(out[j].Issued)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Authenticate returns the active token whose secret is bearer (the secret
// alone, without "Bearer "). Errors are ErrMalformedToken, ErrUnknownToken,
// ErrTokenExpired, ErrTokenRevoked, or a store failure.
func (ts *Tokens) Authenticate(ctx context.Context, bearer string) (Token, error) {
	if bearer == "" {
		return Token{}, ErrNoToken
	}
	raw, ok := strings.CutPrefix(bearer, SecretPrefix)
	if !ok || len(raw) != base64.RawURLEncoding.EncodedLen(secretBytes) {
		return Token{}, ErrMalformedToken
	}
	if b, err := base64.RawURLEncoding.Strict().DecodeString(raw); err != nil || len(b) != secretBytes {
		return Token{}, ErrMalformedToken
	}
	hash := hashSecret(bearer)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if err := ts.catchUp(ctx); err != nil {
		return Token{}, fmt.Errorf("authenticate: %w", err)
	}
	t, ok := ts.byID[hash[:idLen]]
	// The id only narrows the search; the whole hash must match, compared
	// in constant time so timing does not reveal how much of it did.
	if !ok || subtle.ConstantTimeCompare([]byte(t.Hash), []byte(hash)) != 1 {
		return Token{}, ErrUnknownToken
	}
	if !t.Revoked.IsZero() {
		return *t, ErrTokenRevoked
	}
	if !ts.now().Before(t.Expires) {
		return *t, ErrTokenExpired
	}
	return *t, nil
}

func (ts *Tokens) append(ctx context.Context, actor string, ev tokenEvent) error {
	data, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode token event: %w", err)
	}
	return appendRetry(ctx, ts.store, &demur.Record{Stream: TokenStream, Kind: demur.RecToken, Actor: actor, Payload: data})
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// appendRetry appends rec, retrying a few times on demur.ErrConflict: the
// sqlite store reports a stale chain head when another process appended to
// the same stream, and drops its cached head so that a retry succeeds.
func appendRetry(ctx context.Context, store demur.Store, rec *demur.Record) error {
	var err error
	for range 5 {
		r := *rec
		if err = store.Append(ctx, &r); err == nil {
			*rec = r
			return nil
		}
		if !errors.Is(err, demur.ErrConflict) {
			break
		}
	}
	return fmt.Errorf("append %s record: %w", rec.Kind, err)
}
