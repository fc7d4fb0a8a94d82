package imagegen

import (
	"archive/tar"
	"bytes"
	"fmt"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// HostilePayload is the content of every file a hostile layer tries to plant: finding it
// anywhere after a conversion means an escape (or a hostile layer that was kept).
const HostilePayload = "flatbed-hostile-payload\n"

// HostileUp climbs from a layer being unpacked in a store, at
// <store-root>/<repo>/.layers/<xx>/.tmp-<d>-<n>/layerfs, to the directory holding
// <store-root>: "<dir>/root/store" as store root makes "../../../../../../etc/x" mean
// <dir>/root/etc/x.
const HostileUp = "../../../../../../"

// Hostile image names, all with tag "v1" and an innocent first layer; the second layer is
// the hostile one.
const (
	HostileTraversal = "hostile/traversal"     // "../../../../../../etc/x"
	HostileSymlink   = "hostile/symlink-write" // symlink to "../…/etc", then a file through it
	HostileDirLink   = "hostile/dir-symlink"   // a directory replaced by a symlink, then written into
	HostileHardlink  = "hostile/hardlink-out"  // hard link to "../…/etc/passwd"
	HostileDeep      = "hostile/deep"          // a 10,000-component path
	HostileSparse    = "hostile/sparse"        // a sparse file of 1 TiB (over the default byte limit)
	HostileBombName  = "hostile/bomb"          // see HostileBomb
	hostileTag       = "v1"
)

// hostileReasons are substrings of each image's failure (the layer package's messages).
var hostileReasons = map[string]string{
	HostileTraversal: `extracting "` + HostileUp + `etc/x": unsafe layer entry: name has a ".." component`,
	HostileSymlink:   `extracting "escape/x": unsafe layer entry: parent escape is a symlink`,
	HostileDirLink:   `extracting "d/x": unsafe layer entry: parent d is a symlink`,
	HostileHardlink:  `hard link target "` + HostileUp + `etc/passwd": unsafe layer entry`,
	HostileDeep:      `(19999 bytes): layer limit exceeded: path is 19999 bytes`,
	HostileSparse:    `extracting "huge": layer limit exceeded: files (this one 1099511627776 bytes`,
	HostileBombName:  `layer limit exceeded: files (this one 16777216 bytes`,
}

// HostileReason returns the substring the failure reason of the hostile image ref
// ("Name:Tag") contains, or "" when ref is not a hostile image.
func HostileReason(ref string) string {
	name, tag, _ := strings.Cut(ref, ":")
	if tag != hostileTag {
		return ""
	}
	return hostileReasons[name]
}

// Hostile returns small valid images whose second layer is hostile; converting each must
// fail (see HostileReason) without writing anything outside the store, whatever the
// configured limits. Deterministic, like Corpus.
func Hostile() []Named {
	payload := func(name string) ent { return file(name, HostilePayload, 0o644) }
	deep := strings.Repeat("a/", 9999) + "f"
	out := []Named{
		hostileImage(HostileTraversal, tarLayer(payload(HostileUp+"etc/x"))),
		hostileImage(HostileSymlink, tarLayer(symlink("escape", HostileUp+"etc"), payload("escape/x"))),
		hostileImage(HostileDirLink, tarLayer(dir("d", 0o755), payload("d/a"), symlink("d", HostileUp+"etc"), payload("d/x"))),
		hostileImage(HostileHardlink, tarLayer(hardlink("passwd", HostileUp+"etc/passwd"))),
		hostileImage(HostileDeep, tarLayer(payload(deep))),
		hostileImage(HostileSparse, sparseLayer("huge", 1<<40)),
	}
	return out
}

// HostileBomb is a decompression bomb: a layer of ~16 KiB expanding to one 16 MiB file of
// zeros. It converts under the default limit; with --max-layer-bytes below 16 MiB it must
// fail with HostileReason(HostileBomb().Ref()).
func HostileBomb() Named {
	return hostileImage(HostileBombName, tarLayer(file("bomb", strings.Repeat("\x00", 16<<20), 0o644)))
}

// tarLayer is a layer made with archive/tar (which writes "../" names and targets as given).
func tarLayer(entries ...ent) func() ([]byte, error) {
	return func() ([]byte, error) { return buildTar(entries) }
}

// sparseLayer is a PAX 0.1 GNU sparse file of size bytes holding one byte of data at the
// end; archive/tar can read but not write it, so the headers are written by hand.
func sparseLayer(name string, size int64) func() ([]byte, error) {
	return func() ([]byte, error) {
		records := [][2]string{
			{"path", name}, {"GNU.sparse.major", "0"}, {"GNU.sparse.minor", "1"},
			{"GNU.sparse.size", strconv.FormatInt(size, 10)}, {"GNU.sparse.numblocks", "1"},
			{"GNU.sparse.map", fmt.Sprintf("%d,1", size-1)},
		}
		var pax strings.Builder
		for _, r := range records {
			pax.WriteString(paxRecord(r[0], r[1]))
		}
		var buf bytes.Buffer
		buf.Write(ustarHeader(tar.TypeXHeader, "PaxHeaders/sparse", int64(pax.Len())))
		buf.Write(pad512([]byte(pax.String())))
		buf.Write(ustarHeader(tar.TypeReg, "sparse", 1))
		buf.Write(pad512([]byte("x")))
		buf.Write(make([]byte, 1024))
		return buf.Bytes(), nil
	}
}

// ustarHeader is one USTAR header block (mode 0644, owner 0, mtime Epoch).
func ustarHeader(typ byte, name string, size int64) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:108], "0000644\x00")
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], fmt.Sprintf("%011o\x00", Epoch.Unix()))
	b[156] = typ
	copy(b[257:263], "ustar\x00")
	copy(b[263:265], "00")
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func pad512(b []byte) []byte {
	if r := len(b) % 512; r != 0 {
		b = append(b, make([]byte, 512-r)...)
	}
	return b
}

// paxRecord formats "<len> key=value\n", len counting the whole record.
func paxRecord(k, v string) string {
	rec := " " + k + "=" + v + "\n"
	n := len(rec)
	for m := len(strconv.Itoa(n)) + len(rec); m != n; m = len(strconv.Itoa(n)) + len(rec) {
		n = m
	}
	return strconv.Itoa(n) + rec
}

// hostileImage is an OCI image with an innocent base layer and the hostile raw tar on top.
func hostileImage(name string, hostile func() ([]byte, error)) Named {
	base, err := build(imageSpec{name: name, tag: hostileTag, cmd: []string{"/bin/sh"},
		labels: map[string]string{descriptionLbl: "hostile layer test image: converting it must fail"},
		layers: []layerSpec{{comment: "innocent base", entries: []ent{
			dir("etc", 0o755), file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644),
		}}}})
	if err != nil {
		panic("imagegen: " + err.Error())
	}
	img, err := appendRaw(base, hostile)
	if err != nil {
		panic("imagegen: " + name + ": " + err.Error())
	}
	return Named{Name: name, Tag: hostileTag, Image: img}
}

func appendRaw(base v1.Image, mk func() ([]byte, error)) (v1.Image, error) {
	raw, err := mk()
	if err != nil {
		return nil, err
	}
	blob, err := gzipBytes(raw)
	if err != nil {
		return nil, err
	}
	l := &memLayer{raw: raw, blob: blob, mt: types.OCILayer}
	if l.digest, _, err = v1.SHA256(bytes.NewReader(blob)); err != nil {
		return nil, err
	}
	if l.diffID, _, err = v1.SHA256(bytes.NewReader(raw)); err != nil {
		return nil, err
	}
	return mutate.Append(base, mutate.Addendum{Layer: l, MediaType: types.OCILayer,
		History: v1.History{Created: v1.Time{Time: Epoch}, CreatedBy: "imagegen: hostile layer"}})
}
