// Package audit makes demur's log tamper-evident and explainable: signed
// checkpoints as the log grows (Log), verification of a log or an export
// that names the first broken record of each stream (Verify, VerifyStore),
// the JSONL export (Export, ReadExport), and the story of a refusal rebuilt
// from the records (BuildStory, Refusals).
//
// Records are hash-chained per stream by the stores (demur.Record's
// canonical encoding, version demur-record-v1). On top of that a Log appends,
// every N records of a stream and in the same Append call, a checkpoint
// record whose payload is signed with ed25519: it attests the seq and hash
// of the record before it, the stream's record count, and the first 16 hex
// digits of the hash of every record since the previous checkpoint. The
// signature makes a re-hashed chain detectable without the key; the listed
// prefixes let Verify name the exact record that was changed.
//
// Records cut from the end of a log take their checkpoints with them, so the
// Log also keeps the latest checkpoint of each stream in a witness file
// outside the store; Verify given those anchors detects such a cut. What
// stays undetectable is the removal of records after a stream's last
// checkpoint (at most N, plus that checkpoint record itself); demur run
// closes the gap for finished jobs with a final checkpoint. docs/audit.md
// describes the formats, the key location and this window in full.
//
// The package does no network I/O of its own: it reads and writes a key
// directory and works through a demur.Store.
package audit
