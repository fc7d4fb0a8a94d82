package relocate

import (
	"crypto/md5"
	"encoding/hex"
	"testing"

	"flatbed.dev/pkg/imageref"
)

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func mustParse(t *testing.T, s string) imageref.Ref {
	t.Helper()
	r, err := ParseImage(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustFlat(t *testing.T, prefix string, src imageref.Ref) imageref.Ref {
	t.Helper()
	p, err := ParsePrefix(prefix)
	if err != nil {
		t.Fatal(err)
	}
	return mustName(t, p.Flat, src)
}

func mustName(t *testing.T, name Namer, src imageref.Ref) imageref.Ref {
	t.Helper()
	r, err := name(src)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
