package harness

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"flatbed.dev/pkg/imagegen"
	"flatbed.dev/pkg/treecmp"
)

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// facts checks paths of a walked tree.
type facts struct {
	t  *testing.T
	tr treecmp.Tree
}

func (f facts) get(p string, typ treecmp.Type) (treecmp.Entry, bool) {
	f.t.Helper()
	e, ok := f.tr[p]
	if !ok {
		f.t.Errorf("%s: missing", p)
		return e, false
	}
	if e.Type != typ {
		f.t.Errorf("%s: type %s, want %s", p, e.Type, typ)
		return e, false
	}
	return e, true
}

func (f facts) file(p, content string, mode uint32) treecmp.Entry {
	f.t.Helper()
	e, ok := f.get(p, treecmp.File)
	if ok && (e.SHA256 != sum(content) || e.Mode != mode) {
		f.t.Errorf("%s: mode %04o sha %.12s, want %04o content %q", p, e.Mode, e.SHA256, mode, content)
	}
	return e
}

func (f facts) dir(p string, mode uint32) {
	f.t.Helper()
	if e, ok := f.get(p, treecmp.Dir); ok && e.Mode != mode {
		f.t.Errorf("%s: mode %04o, want %04o", p, e.Mode, mode)
	}
}

func (f facts) symlink(p, target string) {
	f.t.Helper()
	if e, ok := f.get(p, treecmp.Symlink); ok && e.Target != target {
		f.t.Errorf("%s: target %q, want %q", p, e.Target, target)
	}
}

func (f facts) owner(p string, uid, gid uint32) {
	f.t.Helper()
	if e := f.tr[p]; e.UID != uid || e.GID != gid {
		f.t.Errorf("%s: owner %d:%d, want %d:%d", p, e.UID, e.GID, uid, gid)
	}
}

func (f facts) link(group string, paths ...string) {
	f.t.Helper()
	for _, p := range paths {
		if e := f.tr[p]; e.Link != group {
			f.t.Errorf("%s: hardlink group %q, want %q", p, e.Link, group)
		}
	}
}

func (f facts) absent(paths ...string) {
	f.t.Helper()
	for _, p := range paths {
		if _, ok := f.tr[p]; ok {
			f.t.Errorf("%s: present, want absent", p)
		}
	}
}

// children returns the direct children of dir.
func (f facts) children(dir string) []string {
	var out []string
	for p := range f.tr {
		if strings.HasPrefix(p, dir+"/") && !strings.Contains(p[len(dir)+1:], "/") {
			out = append(out, p[len(dir)+1:])
		}
	}
	slices.Sort(out)
	return out
}

func (f facts) only(dir string, names ...string) {
	f.t.Helper()
	if got := f.children(dir); !slices.Equal(got, names) {
		f.t.Errorf("%s: children %q, want %q", dir, got, names)
	}
}

var checks = map[string]func(f facts){
	imagegen.BasicName + ":v1": func(f facts) {
		f.file("etc/config", "config v3\n", 0o644)
		f.file("bin/busybox", "#!busybox v2\n", 0o755)
		f.file("bin/su-tool", "setuid tool\n", 0o4755)
		f.file("bin/sg-tool", "setgid tool\n", 0o2755)
		f.dir("tmp", 0o1777)
		f.dir("srv/shared", 0o3775)
		f.owner("srv/shared", 0, 1000)
		f.file("secret", "top secret\n", 0)
		f.dir("locked", 0)
		f.file("locked/inside", "inside a 0000 dir\n", 0o644)
		f.dir("home/user", 0o750)
		f.owner("home/user", 1000, 1000)
		f.owner("home/user/notes.txt", 1000, 1000)
		f.owner("nobody/file", 65534, 65534)
		f.owner("mixed-owner", 1000, 65534)
		f.dir("empty", 0o755)
		f.only("empty")
		f.only("empty-nested/a/b")
		f.file(imagegen.LongPath, "a long path\n", 0o644)
		f.file(imagegen.SplitPath, "a USTAR prefix/name split path\n", 0o644)
		f.file(imagegen.LongNamePath, "a long file name\n", 0o644)
		f.file(imagegen.GNULongPath, "a GNU long name\n", 0o644)
		f.file(imagegen.UnicodePath, "こんにちは\n", 0o644)
		f.file("données/naïve café.txt", "spaces and accents\n", 0o644)
		f.symlink("bin/sh", "/bin/busybox")
		f.symlink("usr/lib/libfoo.so", "libfoo.so.1")
		f.symlink("usr/lib/escape", "../../../../../../etc/shadow")
		f.symlink("usr/share/etc-link", "../../etc")
		f.symlink("abs-dir", "/etc")
		f.symlink("dangling", "/does/not/exist")
		f.symlink("escape", "../../../../etc/passwd")
		f.symlink("long/link-to-long", imagegen.LongTarget)
		f.symlink("usr/bin-link", "../bin")
		f.file("implicit/parent/child.txt", "parents not in the tar\n", 0o644)
		f.file("etc/motd", "welcome\n", 0o644)
	},
	imagegen.WhiteoutsName + ":v1": func(f facts) {
		f.only("a", "1", "2", "3")
		f.file("a/2", "two is back\n", 0o644)
		f.absent("gone-dir", "gone-dir/file", "never-existed")
		f.only("opq-first", "new1")
		f.only("opq-after", "keep-name", "new")
		f.file("opq-after/keep-name", "new keep-name\n", 0o644)
		f.dir("opq-empty", 0o755)
		f.only("opq-empty")
		f.only("wr", "after", "before")
		f.file("wr/before", "new before\n", 0o644)
		f.file("wr/after", "new after\n", 0o644)
		f.only("file-to-dir", "inner")
		f.file("dir-to-file", "now a file\n", 0o644)
		f.symlink("file-to-symlink", "a/3")
		f.file("symlink-to-file", "now a file\n", 0o644)
		f.symlink("dir-to-symlink", "a")
		f.absent("dir-to-symlink/c")
		f.only("recreated-later", "new")
		for p := range f.tr {
			if strings.Contains(p, ".wh.") {
				f.t.Errorf("%s: whiteout left in the rootfs", p)
			}
		}
	},
	imagegen.HardlinksName + ":v1": func(f facts) {
		f.absent("data/orig", "data/victim")
		f.file("data/link-same", "original\n", 0o644)
		f.link("data/link-same", "data/link-same", "data/link-same2")
		f.file("data/link-victim", "victim content\n", 0o644)
		f.link("", "data/link-victim")
		f.file("data/keep", "keep content\n", 0o640)
		f.owner("data/link-earlier", 1000, 1000)
		f.link("data/keep", "data/keep", "data/link-earlier", "other/keep-link")
		f.file("bin/suid-link", "setuid and linked\n", 0o4755)
		f.link("bin/suid", "bin/suid", "bin/suid-link")
		f.file("data/replaced", "replaced v2\n", 0o644)
		f.link("data/link-replaced", "data/link-replaced", "data/replaced")
	},
	imagegen.DemoHello + ":1.0": func(f facts) {
		f.file("app/message.txt", "Hello from flatbed demo 1.0!\n", 0o644)
		f.link("bin/greet", "bin/greet", "bin/hello")
		f.symlink("bin/hi", "hello")
		f.get("etc/os-release", treecmp.File)
	},
	imagegen.DemoHello + ":2.0": func(f facts) {
		f.file("app/message.txt", "Hello from flatbed demo 2.0!\n", 0o644)
		f.get("app/CHANGES", treecmp.File)
	},
	imagegen.DemoTools + ":latest": func(f facts) {
		f.symlink("usr/local/bin/t", "tool-a")
		f.link("usr/local/bin/tool-b", "usr/local/bin/tool-b", "usr/local/bin/tool-b-again")
		f.link("bin/greet", "bin/greet", "bin/hello")
	},
}

func TestCorpusAgainstUmoci(t *testing.T) {
	reg := StartRegistry(t)
	imgs := append(imagegen.Corpus(), imagegen.Demo()...)
	if err := imagegen.Push(context.Background(), reg.Host, imgs); err != nil {
		t.Fatal(err)
	}
	trees := map[string]treecmp.Tree{}
	for _, n := range imgs {
		ref := reg.Host + "/" + n.Ref()
		if n.Twin != "" {
			// umoci cannot read zstd; the registry must serve it as pushed.
			var m struct{ Layers []struct{ MediaType string } }
			if err := json.Unmarshal(SkopeoInspectRaw(t, ref), &m); err != nil {
				t.Fatal(err)
			}
			if len(m.Layers) == 0 || m.Layers[0].MediaType != "application/vnd.oci.image.layer.v1.tar+zstd" {
				t.Errorf("%s: layers %+v", n.Ref(), m.Layers)
			}
			continue
		}
		t.Run(n.Ref(), func(t *testing.T) {
			tr := ReferenceTree(t, ref)
			trees[n.Ref()] = tr
			check, ok := checks[n.Ref()]
			if !ok {
				t.Fatalf("no facts for %s", n.Ref())
			}
			check(facts{t: t, tr: tr})
		})
	}
	want := []string{
		"app/CHANGES: only in b (file)",
		"app/VERSION: sha256 " + sum("1.0\n")[:12] + " != " + sum("2.0\n")[:12],
		"app/message.txt: sha256 " + sum("Hello from flatbed demo 1.0!\n")[:12] + " != " + sum("Hello from flatbed demo 2.0!\n")[:12],
	}
	if got := treecmp.Diff(trees["demo/hello:1.0"], trees["demo/hello:2.0"]); !slices.Equal(got, want) {
		t.Errorf("hello 1.0 vs 2.0:\n%s", strings.Join(got, "\n"))
	}
	reqs := reg.Requests()
	if !slices.Contains(reqs, "PUT /v2/corpus/basic/manifests/v1 201") {
		t.Errorf("manifest PUT not logged; log has %d requests", len(reqs))
	}
}

func TestBlobGETs(t *testing.T) {
	reg := StartRegistry(t)
	demo := imagegen.Demo()[:1]
	if err := imagegen.Push(context.Background(), reg.Host, demo); err != nil {
		t.Fatal(err)
	}
	ls, err := demo[0].Image.Layers()
	if err != nil {
		t.Fatal(err)
	}
	dg, _ := ls[0].Digest()
	if n := reg.BlobGETs(); n != 0 {
		t.Fatalf("after push: %d blob GETs, want 0 (%q)", n, reg.Requests())
	}
	url := reg.URL() + "/v2/" + demo[0].Name + "/blobs/" + dg.String()
	for _, method := range []string{http.MethodHead, http.MethodGet} {
		req, _ := http.NewRequest(method, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %s", method, url, resp.Status)
		}
		want := 0
		if method == http.MethodGet {
			want = 1
		}
		if n := reg.BlobGETs(); n != want {
			t.Errorf("after %s: %d blob GETs, want %d", method, n, want)
		}
	}
	if n := reg.BlobGETsOf(dg.String()); n != 1 {
		t.Errorf("GETs of %s: %d", dg, n)
	}
	if n := reg.BlobGETsOf("sha256:" + strings.Repeat("0", 64)); n != 0 {
		t.Errorf("GETs of an unknown digest: %d", n)
	}
	// a pull through skopeo fetches every layer blob and the config.
	CopyToOCILayout(t, reg.Host+"/"+demo[0].Ref())
	if n := reg.BlobGETs(); n != 1+len(ls)+1 {
		t.Errorf("after skopeo copy: %d blob GETs, want %d\n%s", n, 1+len(ls)+1, strings.Join(reg.Requests(), "\n"))
	}
}
