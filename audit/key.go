package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Key file names inside a key directory.
const (
	PrivateKeyFile = "audit_ed25519"
	PublicKeyFile  = "audit_ed25519.pub"
)

// LoadOrCreateKey returns the checkpoint signing key kept in dir, creating
// the directory (0700), the private key (PKCS #8 PEM, 0600) and the public
// key (PKIX PEM, 0644) on first use. Like ssh, it refuses a private key that
// group or others may read: a leaked key lets anyone re-sign a rewritten log.
func LoadOrCreateKey(dir string) (ed25519.PrivateKey, error) {
	priv := filepath.Join(dir, PrivateKeyFile)
	key, err := loadPrivateKey(priv)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = createKey(dir, priv)
	}
	if err != nil {
		return nil, err
	}
	pub := filepath.Join(dir, PublicKeyFile)
	if _, err := os.Stat(pub); errors.Is(err, fs.ErrNotExist) {
		// The public half can always be rebuilt; a lost .pub is no reason to fail.
		if err := writePublicKey(pub, key.Public().(ed25519.PublicKey)); err != nil {
			return nil, err
		}
	}
	return key, nil
}

func loadPrivateKey(path string) (ed25519.PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("audit key %s: permissions %04o are too open; want 0600", path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("audit key %s: not a PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("audit key %s: %w", path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("audit key %s: %T, want an ed25519 key", path, k)
	}
	return ek, nil
}

// createKey writes a fresh key under a temporary name and links it into
// place, so that two processes starting together end up with one key and a
// crash never leaves half a key file behind.
func createKey(dir, path string) (ed25519.PrivateKey, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create audit key: %w", err)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("create audit key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("create audit key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".audit_ed25519-*") // CreateTemp makes it 0600
	if err != nil {
		return nil, fmt.Errorf("create audit key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("create audit key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("create audit key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("create audit key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return loadPrivateKey(path) // another process won the race
		}
		return nil, fmt.Errorf("create audit key: %w", err)
	}
	if err := writePublicKey(filepath.Join(dir, PublicKeyFile), key.Public().(ed25519.PublicKey)); err != nil {
		return nil, err
	}
	return key, nil
}

func writePublicKey(path string, pub ed25519.PublicKey) error {
	data, err := MarshalPublicKey(pub)
	if err != nil {
		return err
	}
	// A temporary file of its own, not a fixed name: two first uses racing
	// must not rename each other's file away.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".audit_ed25519.pub-*")
	if err != nil {
		return fmt.Errorf("write audit public key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write audit public key: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write audit public key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write audit public key: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write audit public key: %w", err)
	}
	return nil
}

// MarshalPublicKey encodes pub as a PKIX "PUBLIC KEY" PEM block, the format
// of the .pub file and of `demur audit key export`; openssl reads it too.
func MarshalPublicKey(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePublicKey decodes a PEM public key written by MarshalPublicKey.
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PUBLIC KEY" {
		return nil, errors.New("parse public key: not a PEM public key")
	}
	k, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	ek, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("parse public key: %T, want an ed25519 key", k)
	}
	return ek, nil
}

// LoadPublicKey reads a public key file written by LoadOrCreateKey or by
// `demur audit key export`.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load public key: %w", err)
	}
	k, err := ParsePublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// KeyID names a public key in checkpoints: the first 8 bytes of its
// SHA-256, in hex. It lets a verifier say "signed by another key" rather
// than just "bad signature".
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}
