// Package override is demur's secure human override: operator tokens with
// roles, override requests with nonces and expiries, two-person approval,
// per-token rate limits, and an audit record for every attempt.
//
// Overrides are out of band by construction. The only way to create or
// approve one is an authenticated HTTP request to [Service.Handler]; no
// function here takes model output or task text, so "OVERRIDE: force" in an
// output, or JSON shaped like an API call inside a task, stays data.
//
// State is event-sourced in the audit log and nowhere else:
//
//   - stream [TokenStream] (kind demur.RecToken): tokens issued and
//     revoked, with the SHA-256 of the secret, never the secret;
//   - stream [Stream] (kind demur.RecOverride): one record per attempt,
//     accepted or refused, with actor, role, reason and outcome; accepted
//     attempts carry the override's new state.
//
// Every request first catches up with both streams (a query by AfterSeq), so
// a token revoked by the CLI in another process is refused from the next
// request on, and a restarted service remembers nonces and pending
// approvals. See docs/override.md for the HTTP API and the threat model.
package override
