package audit

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// CheckpointVersion tags the bytes a checkpoint signature covers; it is the
// first field signed, so a future format cannot be confused with this one.
const CheckpointVersion = "demur-checkpoint-v1"

// PrefixLen is how many hex digits of each record hash a checkpoint lists.
// 16 digits (64 bits) locate a rewritten record exactly at 16 bytes per
// record; tamper detection itself rests on the full Head hash.
const PrefixLen = 16

// Checkpoint is the payload of a RecCheckpoint record. It is signed with
// the log's ed25519 key and attests that record Seq of Stream had hash Head,
// that the stream then held Count records, and, for each record From..Seq,
// the first PrefixLen hex digits of its hash. Windows of consecutive
// checkpoints of a stream are contiguous, so every record before the last
// checkpoint is listed in exactly one window.
type Checkpoint struct {
	Version int    `json:"v"`
	Stream  string `json:"stream"`
	Seq     int64  `json:"seq"`
	Head    string `json:"head"`
	Count   int64  `json:"count"`
	From    int64  `json:"from"`
	// Hashes concatenates the hash prefixes of records From..Seq.
	Hashes string `json:"hashes"`
	// Key is the KeyID of the signing key.
	Key string `json:"key"`
	// Sig is the base64 ed25519 signature of SignedBytes.
	Sig string `json:"sig"`
}

// SignedBytes returns what the signature covers: CheckpointVersion, then
// stream, seq, head, count, from, hashes and key, each as a uvarint byte
// length followed by the bytes (integers in decimal).
func (c *Checkpoint) SignedBytes() []byte {
	var b []byte
	for _, f := range []string{CheckpointVersion, c.Stream, strconv.FormatInt(c.Seq, 10), c.Head,
		strconv.FormatInt(c.Count, 10), strconv.FormatInt(c.From, 10), c.Hashes, c.Key} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

// Sign fills in Version, Key and Sig.
func (c *Checkpoint) Sign(key ed25519.PrivateKey) {
	c.Version = 1
	c.Key = KeyID(key.Public().(ed25519.PublicKey))
	c.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(key, c.SignedBytes()))
}

// errSignature and errOtherKey let Verify tell the two signature failures apart.
var (
	errSignature = errors.New("signature invalid")
	errOtherKey  = errors.New("signed by another key")
)

// CheckSignature verifies Sig against pub.
func (c *Checkpoint) CheckSignature(pub ed25519.PublicKey) error {
	if id := KeyID(pub); c.Key != id {
		return fmt.Errorf("%w: key %q, want %q", errOtherKey, c.Key, id)
	}
	sig, err := base64.StdEncoding.DecodeString(c.Sig)
	if err != nil || !ed25519.Verify(pub, c.SignedBytes(), sig) {
		return errSignature
	}
	return nil
}

// check validates the checkpoint's own structure, independent of the log.
func (c *Checkpoint) check() error {
	switch {
	case c.Version != 1:
		return fmt.Errorf("version %d, want 1", c.Version)
	case c.Seq < 1 || c.From < 1 || c.From > c.Seq:
		return fmt.Errorf("window %d..%d is not a seq range", c.From, c.Seq)
	case c.Count != c.Seq:
		return fmt.Errorf("count %d does not match seq %d", c.Count, c.Seq)
	case int64(len(c.Hashes)) != PrefixLen*(c.Seq-c.From+1):
		return fmt.Errorf("lists %d hash digits for %d records", len(c.Hashes), c.Seq-c.From+1)
	case len(c.Head) != 64:
		return fmt.Errorf("head %q is not a SHA-256 hash", c.Head)
	}
	return nil
}

// prefix returns the listed hash prefix of record seq (From <= seq <= Seq).
func (c *Checkpoint) prefix(seq int64) string {
	i := (seq - c.From) * PrefixLen
	return c.Hashes[i : i+PrefixLen]
}

// ParseCheckpoint decodes a checkpoint record's payload.
func ParseCheckpoint(payload []byte) (*Checkpoint, error) {
	var c Checkpoint
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, fmt.Errorf("parse checkpoint: %w", err)
	}
	return &c, nil
}
