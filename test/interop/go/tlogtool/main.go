// Command tlogtool runs the reference Go implementation of RFC 6962 / C2SP transparency-log math
// (golang.org/x/mod/sumdb/tlog and sumdb/note) against ucanlog's TypeScript implementation.
// The interop tests build it (GOPATH mode, Debian's golang-golang-x-mod-dev, no network) and drive it
// through test/interop/go.ts.
//
// Subcommands:
//
//	tlogtool vectors N                     known-answer vectors for entries "leaf 0".."leaf N-1" (JSON)
//	tlogtool check-proofs < proofs.json    tlog.CheckRecord / tlog.CheckTree on each proof (JSON)
//	tlogtool verify-tiles DIR SIZE ROOT    recompute and check a c2sp.org/tlog-tiles directory
//	tlogtool verify-note VKEY... < note    note.Open; prints the note text
//	tlogtool sign-note SKEY... < text      note.Sign; prints the signed note
//	tlogtool prove-tree NEW OLD            tlog.ProveTree for "leaf i" entries, with both roots (JSON)
//	tlogtool verify-cosignature LOGVKEY WITNESSVKEY < note
//	                                       note.Open with the log key and a cosignature/v1 verifier (JSON)
//
// Exit status: 0 on success, 1 when a check fails, 2 on bad usage or input.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "vectors":
		if len(args) != 1 {
			usage()
		}
		n, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil || n < 1 {
			usage()
		}
		vectors(n)
	case "check-proofs":
		checkProofs()
	case "verify-tiles":
		if len(args) != 3 {
			usage()
		}
		size, err := strconv.ParseInt(args[1], 10, 64)
		if err != nil || size < 0 {
			usage()
		}
		root, err := tlog.ParseHash(args[2])
		if err != nil {
			fail(2, "bad root hash: %v", err)
		}
		verifyTiles(args[0], size, root)
	case "verify-note":
		if len(args) < 1 {
			usage()
		}
		verifyNote(args)
	case "sign-note":
		if len(args) < 1 {
			usage()
		}
		signNote(args)
	case "prove-tree":
		proveTree(args)
	case "verify-cosignature":
		verifyCosignature(args)
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: tlogtool vectors N | check-proofs | verify-tiles DIR SIZE ROOT_B64 | verify-note VKEY... | sign-note SKEY... | prove-tree NEW OLD | verify-cosignature LOGVKEY WITNESSVKEY")
	os.Exit(2)
}

func fail(code int, format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "tlogtool: "+format+"\n", args...)
	os.Exit(code)
}

func writeJSON(v interface{}) {
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		fail(2, "%v", err)
	}
	os.Stdout.Write(append(out, '\n'))
}

// hashStorage is a tree's stored hashes in tlog.StoredHashIndex order.
type hashStorage []tlog.Hash

func (s hashStorage) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(s)) {
			return nil, fmt.Errorf("stored hash %d not in storage of %d hashes", x, len(s))
		}
		out[i] = s[x]
	}
	return out, nil
}

// build appends leaf hashes to a new storage, as a log would.
func build(leaves []tlog.Hash) hashStorage {
	var s hashStorage
	for i, h := range leaves {
		hs, err := tlog.StoredHashesForRecordHash(int64(i), h, s)
		if err != nil {
			fail(2, "StoredHashes: %v", err)
		}
		s = append(s, hs...)
	}
	return s
}

// ---- vectors ----

type vectorFile struct {
	Description string              `json:"description"`
	Entries     string              `json:"entries"`
	Size        int64               `json:"size"`
	Roots       []tlog.Hash         `json:"roots"`
	Inclusion   []inclusionVector   `json:"inclusion"`
	Consistency []consistencyVector `json:"consistency"`
}

type inclusionVector struct {
	Size  int64       `json:"size"`
	Index int64       `json:"index"`
	Proof []tlog.Hash `json:"proof"`
}

type consistencyVector struct {
	New   int64       `json:"new"`
	Old   int64       `json:"old"`
	Proof []tlog.Hash `json:"proof"`
}

// interesting returns the sorted distinct values of xs that lie in [lo, hi].
func interesting(lo, hi int64, xs ...int64) []int64 {
	seen := map[int64]bool{}
	var out []int64
	for _, x := range xs {
		if x >= lo && x <= hi && !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// vectors prints the roots of every tree size 1..n over entries "leaf 0".."leaf n-1", with
// inclusion proofs for every (size, index) and consistency proofs for every (new, old) with sizes
// up to 32, and for larger sizes around powers of two and tile boundaries (the sizes below and n)
// the proofs for indexes 0, 1, size/2, size-2, size-1 and old sizes 1, 2, 31, 32, 33, size/2,
// size-1, size.
func vectors(n int64) {
	leaves := make([]tlog.Hash, n)
	for i := range leaves {
		leaves[i] = tlog.RecordHash([]byte(fmt.Sprintf("leaf %d", i)))
	}
	s := build(leaves)
	f := vectorFile{
		Description: "golang.org/x/mod/sumdb/tlog v0.7.0 (go1.19) TreeHash, ProveRecord and ProveTree; roots[i] is the root of size i+1; generated by test/interop/go/tlogtool vectors",
		Entries:     "leaf %d",
		Size:        n,
		Roots:       []tlog.Hash{},
		Inclusion:   []inclusionVector{},
		Consistency: []consistencyVector{},
	}
	for size := int64(1); size <= n; size++ {
		h, err := tlog.TreeHash(size, s)
		if err != nil {
			fail(2, "TreeHash: %v", err)
		}
		f.Roots = append(f.Roots, h)
	}
	sizes := interesting(1, n, 33, 63, 64, 65, 100, 127, 128, 129, 255, 256, 257, 299, 300, 511, 512, 513, n)
	for size := int64(1); size <= n; size++ {
		var indexes, olds []int64
		if size <= 32 {
			for i := int64(0); i < size; i++ {
				indexes = append(indexes, i)
				olds = append(olds, i+1)
			}
		} else {
			found := false
			for _, x := range sizes {
				found = found || x == size
			}
			if !found {
				continue
			}
			indexes = interesting(0, size-1, 0, 1, size/2, size-2, size-1)
			olds = interesting(1, size, 1, 2, 31, 32, 33, size/2, size-1, size)
		}
		for _, i := range indexes {
			p, err := tlog.ProveRecord(size, i, s)
			if err != nil {
				fail(2, "ProveRecord: %v", err)
			}
			f.Inclusion = append(f.Inclusion, inclusionVector{size, i, nonNil(p)})
		}
		for _, old := range olds {
			p, err := tlog.ProveTree(size, old, s)
			if err != nil {
				fail(2, "ProveTree: %v", err)
			}
			f.Consistency = append(f.Consistency, consistencyVector{size, old, nonNil(p)})
		}
	}
	writeJSON(f)
}

func nonNil(p []tlog.Hash) []tlog.Hash {
	if p == nil {
		return []tlog.Hash{}
	}
	return p
}

// ---- check-proofs ----

type proofInput struct {
	Inclusion []struct {
		Size  int64       `json:"size"`
		Index int64       `json:"index"`
		Root  tlog.Hash   `json:"root"`
		Leaf  tlog.Hash   `json:"leaf"`
		Proof []tlog.Hash `json:"proof"`
	} `json:"inclusion"`
	Consistency []struct {
		New     int64       `json:"new"`
		NewRoot tlog.Hash   `json:"newRoot"`
		Old     int64       `json:"old"`
		OldRoot tlog.Hash   `json:"oldRoot"`
		Proof   []tlog.Hash `json:"proof"`
	} `json:"consistency"`
}

type checkResult struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

func result(err error) checkResult {
	if err != nil {
		return checkResult{false, err.Error()}
	}
	return checkResult{OK: true}
}

// checkProofs reads proofs as JSON on stdin, checks each with tlog.CheckRecord or tlog.CheckTree,
// and prints one result per proof, in input order.
func checkProofs() {
	var in proofInput
	dec := json.NewDecoder(os.Stdin)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		fail(2, "reading proofs: %v", err)
	}
	out := struct {
		Inclusion   []checkResult `json:"inclusion"`
		Consistency []checkResult `json:"consistency"`
	}{[]checkResult{}, []checkResult{}}
	failed := 0
	for _, p := range in.Inclusion {
		r := result(tlog.CheckRecord(p.Proof, p.Size, p.Root, p.Index, p.Leaf))
		if !r.OK {
			failed++
		}
		out.Inclusion = append(out.Inclusion, r)
	}
	for _, p := range in.Consistency {
		r := result(tlog.CheckTree(p.Proof, p.New, p.NewRoot, p.Old, p.OldRoot))
		if !r.OK {
			failed++
		}
		out.Consistency = append(out.Consistency, r)
	}
	writeJSON(out)
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "tlogtool: %d proofs failed\n", failed)
		os.Exit(1)
	}
}

// ---- verify-tiles ----

// c2spPath converts an x/mod tile (height 8) to its c2sp.org/tlog-tiles path:
// tile/8/<L>/… becomes tile/<L>/…, and tile/8/data/… becomes tile/entries/….
func c2spPath(t tlog.Tile) string {
	p := strings.TrimPrefix(t.Path(), "tile/8/")
	if t.L == -1 {
		return "tile/entries/" + strings.TrimPrefix(p, "data/")
	}
	return "tile/" + p
}

// parseC2SPPath is the inverse of c2spPath, as strict as tlog.ParseTilePath.
func parseC2SPPath(p string) (tlog.Tile, error) {
	var xmod string
	switch {
	case strings.HasPrefix(p, "tile/entries/"):
		xmod = "tile/8/data/" + strings.TrimPrefix(p, "tile/entries/")
	case strings.HasPrefix(p, "tile/"):
		xmod = "tile/8/" + strings.TrimPrefix(p, "tile/")
	default:
		return tlog.Tile{}, fmt.Errorf("not a tile path: %q", p)
	}
	t, err := tlog.ParseTilePath(xmod)
	if err != nil {
		return tlog.Tile{}, err
	}
	if t.H != 8 || c2spPath(t) != p {
		return tlog.Tile{}, fmt.Errorf("non-canonical tile path %q", p)
	}
	return t, nil
}

// dirTileReader reads C2SP tiles from a directory. Like x/mod's sumdb client, a missing partial
// tile is served from the prefix of the full tile, which c2sp.org/tlog-tiles lets clients fall back
// to (a log MAY delete a partial tile once the full tile exists).
type dirTileReader struct {
	dir   string
	reads int
}

func (r *dirTileReader) Height() int { return 8 }

func (r *dirTileReader) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

func (r *dirTileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		r.reads++
		data, err := os.ReadFile(filepath.Join(r.dir, filepath.FromSlash(c2spPath(t))))
		if errors.Is(err, fs.ErrNotExist) && t.W < 1<<8 {
			full := t
			full.W = 1 << 8
			if fd, ferr := os.ReadFile(filepath.Join(r.dir, filepath.FromSlash(c2spPath(full)))); ferr == nil && len(fd) >= t.W*tlog.HashSize {
				data, err = fd[:t.W*tlog.HashSize], nil
			}
		}
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}

// verifyTiles checks a c2sp.org/tlog-tiles directory against a tree (size, root):
//  1. tlog.TreeHash over tlog.TileHashReader (which authenticates the tiles it reads) equals root,
//     and every leaf hash read through the TileHashReader is authenticated the same way;
//  2. the tree recomputed from scratch from the level-0 tiles alone has the same root;
//  3. every hash tile file under DIR/tile equals tlog.ReadTileData of the recomputed tree (so stale
//     partial tiles of earlier sizes must be prefixes of the current data);
//  4. every entry bundle under DIR/tile/entries has exactly W uint16-BE-length-prefixed entries
//     whose RecordHash equals the corresponding leaf hash.
func verifyTiles(dir string, size int64, root tlog.Hash) {
	tr := &dirTileReader{dir: dir}
	thr := tlog.TileHashReader(tlog.Tree{N: size, Hash: root}, tr)
	th, err := tlog.TreeHash(size, thr)
	if err != nil {
		fail(1, "TreeHash via TileHashReader: %v", err)
	}
	if th != root {
		fail(1, "TreeHash via TileHashReader = %v, want %v", th, root)
	}

	// Level-0 tiles, read directly (one partial tile at most, at the end).
	leaves := make([]tlog.Hash, 0, size)
	for n := int64(0); n*256 < size; n++ {
		w := size - n*256
		if w > 256 {
			w = 256
		}
		data, err := tr.ReadTiles([]tlog.Tile{{H: 8, L: 0, N: n, W: int(w)}})
		if err != nil {
			fail(1, "reading level-0 tile %d: %v", n, err)
		}
		if len(data[0]) != int(w)*tlog.HashSize {
			fail(1, "level-0 tile %d is %d bytes, want %d", n, len(data[0]), w*tlog.HashSize)
		}
		for i := int64(0); i < w; i++ {
			var h tlog.Hash
			copy(h[:], data[0][i*tlog.HashSize:])
			leaves = append(leaves, h)
		}
	}
	indexes := make([]int64, size)
	for i := range indexes {
		indexes[i] = tlog.StoredHashIndex(0, int64(i))
	}
	for lo := int64(0); lo < size; lo += 256 {
		hi := lo + 256
		if hi > size {
			hi = size
		}
		got, err := thr.ReadHashes(indexes[lo:hi])
		if err != nil {
			fail(1, "TileHashReader leaves %d..%d: %v", lo, hi-1, err)
		}
		for i, h := range got {
			if h != leaves[lo+int64(i)] {
				fail(1, "TileHashReader leaf %d differs from level-0 tile", lo+int64(i))
			}
		}
	}
	s := build(leaves)
	if rh, err := tlog.TreeHash(size, s); err != nil || rh != root {
		fail(1, "tree recomputed from level-0 tiles has root %v (%v), want %v", rh, err, root)
	}

	var nTiles, nBundles, nEntries int
	top := filepath.Join(dir, "tile")
	err = filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		t, err := parseC2SPPath(rel)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if t.L == -1 {
			nBundles++
			entries, err := parseBundle(data)
			if err != nil {
				return fmt.Errorf("%s: %v", rel, err)
			}
			if len(entries) != t.W {
				return fmt.Errorf("%s: %d entries, want %d", rel, len(entries), t.W)
			}
			for k, e := range entries {
				i := t.N*256 + int64(k)
				if i >= size {
					return fmt.Errorf("%s: entry %d beyond tree size %d", rel, i, size)
				}
				if tlog.RecordHash(e) != leaves[i] {
					return fmt.Errorf("%s: entry %d does not match its leaf hash", rel, i)
				}
				nEntries++
			}
			return nil
		}
		nTiles++
		want, err := tlog.ReadTileData(t, s)
		if err != nil {
			return fmt.Errorf("%s: not in tree of size %d: %v", rel, size, err)
		}
		if !bytes.Equal(data, want) {
			return fmt.Errorf("%s: contents differ from the recomputed tree", rel)
		}
		return nil
	})
	if err != nil {
		fail(1, "%v", err)
	}
	fmt.Fprintf(os.Stderr, "tiles %d bundles %d entries %d\n", nTiles, nBundles, nEntries)
	fmt.Printf("ok %d %s\n", size, base64.StdEncoding.EncodeToString(root[:]))
}

// parseBundle splits a c2sp.org/tlog-tiles entry bundle: uint16 big-endian length || entry, repeated.
func parseBundle(data []byte) ([][]byte, error) {
	var entries [][]byte
	for len(data) > 0 {
		if len(data) < 2 {
			return nil, errors.New("truncated length prefix")
		}
		n := int(binary.BigEndian.Uint16(data))
		data = data[2:]
		if len(data) < n {
			return nil, errors.New("truncated entry")
		}
		entries = append(entries, data[:n])
		data = data[n:]
	}
	return entries, nil
}

// ---- signed notes ----

func verifyNote(vkeys []string) {
	var vs []note.Verifier
	for _, k := range vkeys {
		v, err := note.NewVerifier(k)
		if err != nil {
			fail(2, "NewVerifier(%q): %v", k, err)
		}
		vs = append(vs, v)
	}
	msg, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(2, "%v", err)
	}
	n, err := note.Open(msg, note.VerifierList(vs...))
	if err != nil {
		fail(1, "Open: %v", err)
	}
	os.Stdout.WriteString(n.Text)
}

func signNote(skeys []string) {
	var ss []note.Signer
	for _, k := range skeys {
		s, err := note.NewSigner(k)
		if err != nil {
			fail(2, "NewSigner: %v", err)
		}
		ss = append(ss, s)
	}
	text, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(2, "%v", err)
	}
	msg, err := note.Sign(&note.Note{Text: string(text)}, ss...)
	if err != nil {
		fail(1, "Sign: %v", err)
	}
	os.Stdout.Write(msg)
}
