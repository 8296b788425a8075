// Witness interop: consistency proofs computed by x/mod for our witness to check, and an
// independent cosignature/v1 verifier (c2sp.org/tlog-cosignature) built on crypto/ed25519 and
// x/mod's note.Open, to check our witness's cosignatures.

package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// ---- prove-tree ----

type treeProof struct {
	NewSize int64       `json:"newSize"`
	NewRoot tlog.Hash   `json:"newRoot"`
	OldSize int64       `json:"oldSize"`
	OldRoot tlog.Hash   `json:"oldRoot"`
	Proof   []tlog.Hash `json:"proof"`
}

// proveTree prints, for the tree of entries "leaf 0".."leaf NEW-1", the roots of sizes NEW and OLD
// and tlog.ProveTree(NEW, OLD): the RFC 6962 §2.1.2 consistency proof a log sends a witness.
func proveTree(args []string) {
	if len(args) != 2 {
		usage()
	}
	newSize, err1 := strconv.ParseInt(args[0], 10, 64)
	oldSize, err2 := strconv.ParseInt(args[1], 10, 64)
	if err1 != nil || err2 != nil || oldSize < 1 || newSize < oldSize {
		fail(2, "prove-tree NEW OLD wants 1 <= OLD <= NEW")
	}
	leaves := make([]tlog.Hash, newSize)
	for i := range leaves {
		leaves[i] = tlog.RecordHash([]byte(fmt.Sprintf("leaf %d", i)))
	}
	s := build(leaves)
	out := treeProof{NewSize: newSize, OldSize: oldSize, Proof: []tlog.Hash{}}
	var err error
	if out.NewRoot, err = tlog.TreeHash(newSize, s); err != nil {
		fail(1, "TreeHash: %v", err)
	}
	if out.OldRoot, err = tlog.TreeHash(oldSize, s); err != nil {
		fail(1, "TreeHash: %v", err)
	}
	p, err := tlog.ProveTree(newSize, oldSize, s)
	if err != nil {
		fail(1, "ProveTree: %v", err)
	}
	if len(p) > 0 {
		out.Proof = p
	}
	writeJSON(out)
}

// ---- verify-cosignature ----

// cosigV1Verifier is a note.Verifier for an Ed25519 cosignature/v1 key (type 0x04). The signature
// note.Open hands it is what follows the 4-byte key ID: timestamp (8 bytes, big-endian) || Ed25519
// signature (64 bytes) over "cosignature/v1\ntime <T>\n" + the note text.
type cosigV1Verifier struct {
	name      string
	hash      uint32
	pub       ed25519.PublicKey
	timestamp uint64
}

func (v *cosigV1Verifier) Name() string    { return v.name }
func (v *cosigV1Verifier) KeyHash() uint32 { return v.hash }
func (v *cosigV1Verifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig[:8])
	if t > math.MaxInt64 {
		return false
	}
	m := append([]byte(fmt.Sprintf("cosignature/v1\ntime %d\n", t)), msg...)
	if !ed25519.Verify(v.pub, m, sig[8:]) {
		return false
	}
	v.timestamp = t
	return true
}

// newCosigV1Verifier parses a cosignature/v1 vkey, <name>+<hex8 key ID>+base64(0x04 || pub), and
// checks the key ID: SHA-256(name || 0x0A || 0x04 || pub)[:4].
func newCosigV1Verifier(vkey string) (*cosigV1Verifier, error) {
	name, rest, ok1 := strings.Cut(vkey, "+")
	hash16, key64, ok2 := strings.Cut(rest, "+")
	if !ok1 || !ok2 || len(hash16) != 8 {
		return nil, fmt.Errorf("malformed vkey")
	}
	hash, err := strconv.ParseUint(hash16, 16, 32)
	if err != nil {
		return nil, fmt.Errorf("malformed key ID")
	}
	key, err := base64.StdEncoding.DecodeString(key64)
	if err != nil || len(key) != 1+ed25519.PublicKeySize || key[0] != 0x04 {
		return nil, fmt.Errorf("want a type 0x04 Ed25519 key")
	}
	h := sha256.Sum256(append([]byte(name+"\n"), key...))
	if binary.BigEndian.Uint32(h[:4]) != uint32(hash) {
		return nil, fmt.Errorf("key ID does not match")
	}
	return &cosigV1Verifier{name: name, hash: uint32(hash), pub: ed25519.PublicKey(key[1:])}, nil
}

type cosignatureResult struct {
	Text      string   `json:"text"`
	Verified  []string `json:"verified"`
	Timestamp uint64   `json:"timestamp"`
}

// verifyCosignature opens the note on stdin with the log's Ed25519 vkey and the witness's
// cosignature/v1 vkey, and requires both signatures to verify.
func verifyCosignature(args []string) {
	if len(args) != 2 {
		usage()
	}
	logV, err := note.NewVerifier(args[0])
	if err != nil {
		fail(2, "log vkey: %v", err)
	}
	cosigV, err := newCosigV1Verifier(args[1])
	if err != nil {
		fail(2, "witness vkey: %v", err)
	}
	msg, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(2, "%v", err)
	}
	n, err := note.Open(msg, note.VerifierList(logV, cosigV))
	if err != nil {
		fail(1, "Open: %v", err)
	}
	out := cosignatureResult{Text: n.Text, Verified: []string{}}
	var logOK, cosigOK bool
	for _, s := range n.Sigs {
		out.Verified = append(out.Verified, s.Name)
		logOK = logOK || s.Hash == logV.KeyHash() && s.Name == logV.Name()
		cosigOK = cosigOK || s.Hash == cosigV.hash && s.Name == cosigV.name
	}
	if !logOK || !cosigOK {
		fail(1, "want both the log signature and the cosignature, verified %v", out.Verified)
	}
	if bytes.Contains([]byte(n.Text), []byte("\r")) {
		fail(1, "CR in note text")
	}
	out.Timestamp = cosigV.timestamp
	writeJSON(out)
}
