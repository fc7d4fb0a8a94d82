package e2e

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"flatbed.dev/e2e/harness"
	"flatbed.dev/pkg/store"
)

// An image decides what stands at the names the Singularity files are written to. Whatever
// it puts there (symlinks out of the store, absolute, relative or dangling, a fifo, a device,
// a symlinked .singularity.d), the flattener replaces the entry and writes nothing outside
// the store; the image converts with the files Singularity expects.
func TestSingularityFilesNeverFollowTheImage(t *testing.T) {
	reg := harness.StartRegistry(t)
	tmp := t.TempDir()
	root := filepath.Join(tmp, "root")
	storeRoot := filepath.Join(root, "store")
	for _, d := range []string{storeRoot, filepath.Join(root, "etc")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	passwd := filepath.Join(root, "etc", "passwd")
	if err := os.WriteFile(passwd, []byte("root:x:0:0::/root:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.RemoveAll(storeRoot) })

	// From <store>/<repo>/.flat/xx/<config>/.singularity.d/env/, seven ".." reach root.
	up7 := strings.Repeat("../", 7)
	const env = ".singularity.d/env/90-environment.sh"
	dirs := []tar.Header{{Name: ".singularity.d/", Typeflag: tar.TypeDir, Mode: 0o755}, {Name: ".singularity.d/env/", Typeflag: tar.TypeDir, Mode: 0o755}}
	cases := map[string][]tar.Header{
		"abs-symlink":      append(dirs, tar.Header{Name: env, Typeflag: tar.TypeSymlink, Linkname: passwd}),
		"rel-symlink":      append(dirs, tar.Header{Name: env, Typeflag: tar.TypeSymlink, Linkname: up7 + "etc/passwd"}),
		"dangling-symlink": append(dirs, tar.Header{Name: env, Typeflag: tar.TypeSymlink, Linkname: filepath.Join(root, "etc", "planted")}),
		"fifo":             append(dirs, tar.Header{Name: env, Typeflag: tar.TypeFifo, Mode: 0o644}),
		"char-device":      append(dirs, tar.Header{Name: env, Typeflag: tar.TypeChar, Mode: 0o644, Devmajor: 5, Devminor: 0}),
		"dir-symlink":      {{Name: ".singularity.d", Typeflag: tar.TypeSymlink, Linkname: filepath.Join(root, "etc")}},
		"env-dir-symlink":  {dirs[0], {Name: ".singularity.d/env", Typeflag: tar.TypeSymlink, Linkname: strings.Repeat("../", 6) + "etc"}},
		"link-names":       {{Name: "environment", Typeflag: tar.TypeSymlink, Linkname: passwd}, {Name: "singularity", Typeflag: tar.TypeSymlink, Linkname: filepath.Join(root, "etc")}},
	}
	payload := "X=\nssh-ed25519 AAAAhostile attacker@example"
	var refs []string
	for name, hdrs := range cases {
		base := tarOf(t, map[string]string{"bin/sh": "#!/bin/true\n"})
		layer := tarEntries(t, hdrs)
		c := configOfEnv(t, []string{sha256Of(base), sha256Of(layer)}, []string{"PATH=/bin", payload})
		gzBase, gzLayer := gzipOf(t, base), gzipOf(t, layer)
		rawImage(t, reg.Host, "hostile-sif/"+name+":v1", c, []rawLayer{
			{rawBlob{gzBase, types.DockerLayer}, int64(len(gzBase))}, {rawBlob{gzLayer, types.DockerLayer}, int64(len(gzLayer))}})
		refs = append(refs, "hostile-sif/"+name+":v1")
	}
	before := treeState(t, tmp, storeRoot)
	out, _ := runFlatbed(t, 0, "convert", writeRawWishlist(t, reg.Host, refs), "--store-root", storeRoot, "--state-dir", t.TempDir(), "-i", "--timeout", "3m")

	if d := diffStates(before, treeState(t, tmp, storeRoot)); len(d) > 0 {
		t.Errorf("files outside the store changed:\n%s", strings.Join(d, "\n"))
	}
	st := store.New(filepath.Join(storeRoot, mpRepo))
	for _, ref := range refs {
		flat := st.PublicPath(reg.Host + "/" + ref)
		fi, err := os.Lstat(filepath.Join(flat, env))
		if err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s: %s is not a regular file (%v, %v)\n%s", ref, env, fi, err, out)
			continue
		}
		b, _ := os.ReadFile(filepath.Join(flat, env))
		if !strings.Contains(string(b), "export X='\nssh-ed25519 AAAAhostile attacker@example'") {
			t.Errorf("%s: %s does not export the image's Env quoted:\n%s", ref, env, b)
		}
		for link, target := range map[string]string{"environment": env, "singularity": ".singularity.d/runscript"} {
			if got, err := os.Readlink(filepath.Join(flat, link)); err != nil || got != target {
				t.Errorf("%s: %s -> %q (%v), want %q", ref, link, got, err, target)
			}
		}
	}
}

// tarEntries makes a tar of headers with no content.
func tarEntries(t testing.TB, hdrs []tar.Header) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range hdrs {
		h := h
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	return b.Bytes()
}

func configOfEnv(t testing.TB, diffIDs, env []string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Env": env, "Cmd": []string{"/bin/sh"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
