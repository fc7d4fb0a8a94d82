package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"flatbed.dev/e2e/faultproxy"
	"flatbed.dev/e2e/harness"
	n "flatbed.dev/pkg/notification"
	"flatbed.dev/pkg/store"
)

// cvmfs_server cannot be installed here. cvmfsStandIn is one that records every call
// ("begin <args>" when it starts, "end <subcommand>" when it ends well) and acts on root as
// a publisher's mount would look to flatbed: ingest -t - -b BASE extracts the tar under
// root/BASE (and --catalog adds BASE/.cvmfscatalog), ingest --delete P removes root/P;
// transaction, publish and abort only record. $STANDIN_SLOW names a subcommand that first
// sleeps $STANDIN_SLEEP seconds; $STANDIN_SLEEP alone slows every call.
func cvmfsStandIn(t *testing.T, root string) (bin, log string) {
	t.Helper()
	dir := t.TempDir()
	bin, log = filepath.Join(dir, "cvmfs_server"), filepath.Join(dir, "calls")
	script := `#!/bin/sh
log='` + log + `'
root='` + root + `'
cmd=$1
echo "begin $*" >> "$log"
if [ -n "$STANDIN_SLEEP" ] && { [ -z "$STANDIN_SLOW" ] || [ "$cmd" = "$STANDIN_SLOW" ]; }; then sleep "$STANDIN_SLEEP"; fi
if [ "$cmd" = ingest ]; then
  shift
  base=; tarin=; catalog=
  while [ $# -gt 1 ]; do
    case "$1" in
      --catalog) catalog=1 ;;
      -t) tarin=$2; shift ;;
      -b) base=$2; shift ;;
      --delete) rm -rf "$root/$2"; shift ;;
    esac
    shift
  done
  if [ -n "$tarin" ]; then
    mkdir -p "$root/$base" && tar -x -f - -C "$root/$base" || exit 5
    if [ -n "$catalog" ]; then : > "$root/$base/.cvmfscatalog"; fi
  fi
fi
echo "end $cmd" >> "$log"
`
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FLATBED_CVMFS_SERVER", bin)
	return bin, log
}

// standInCalls are the calls recorded, "begin " left out, with layer digests and the
// repository named by letters: L<i> for layers[i]'s hex.
func standInCalls(t *testing.T, log string, layers ...[]byte) []string {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if c, ok := strings.CutPrefix(l, "begin "); ok {
			for i, layer := range layers {
				hex := strings.TrimPrefix(sha256Of(layer), "sha256:")
				c = strings.ReplaceAll(c, hex[:2]+"/"+hex, fmt.Sprintf("L%d", i))
			}
			out = append(out, strings.ReplaceAll(c, mpRepo, "REPO"))
		}
	}
	return out
}

// cvmfsImage pushes repo:tag, a shared base layer and a layer of its own holding body at
// app/<tag>, and returns the two compressed layers and the config.
func cvmfsImage(t *testing.T, host, repo string, base []byte, tag, body string) (layers [][]byte, cfg []byte) {
	t.Helper()
	top := tarOf(t, map[string]string{"app/" + tag: body})
	gzBase, gzTop := gzipOf(t, base), gzipOf(t, top)
	cfg = configOfEnv(t, []string{sha256Of(base), sha256Of(top)}, []string{"WHO=" + tag})
	rawImage(t, host, repo+":"+tag, cfg, []rawLayer{
		{rawBlob{gzBase, types.DockerLayer}, int64(len(gzBase))}, {rawBlob{gzTop, types.DockerLayer}, int64(len(gzTop))}})
	return [][]byte{gzBase, gzTop}, cfg
}

func flatRelOf(cfg []byte) string {
	hex := strings.TrimPrefix(sha256Of(cfg), "sha256:")
	return ".flat/" + hex[:2] + "/" + hex
}

// With --store-backend REPO=cvmfs a conversion publishes through cvmfs_server, exactly: each
// layer streamed into ingest --catalog and described in a transaction, then the flat tree,
// public path and metadata in one transaction; delete-image and garbage-collection each in
// one transaction (none when there is nothing to collect); mountless (cvmfs-ingest), a
// delete is one ingest --delete.
func TestCVMFSBackendCommands(t *testing.T) {
	reg := harness.StartRegistry(t)
	storeRoot := t.TempDir()
	t.Cleanup(func() { store.RemoveAll(storeRoot) })
	repo := filepath.Join(storeRoot, mpRepo)
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	_, log := cvmfsStandIn(t, repo)
	base := tarOf(t, map[string]string{"etc/os-release": "ID=flatbed-cvmfs\n"})
	oneLayers, oneCfg := cvmfsImage(t, reg.Host, "apps/one", base, "v1", "I am one\n")
	twoLayers, twoCfg := cvmfsImage(t, reg.Host, "apps/two", base, "v1", "I am two\n")
	backend := "--store-backend=" + mpRepo + "=cvmfs"
	common := []string{"--store-root", storeRoot, "--state-dir", t.TempDir(), backend}

	runFlatbed(t, 0, append([]string{"convert", writeRawWishlist(t, reg.Host, []string{"apps/one:v1"}), "-i", "--max-concurrent-downloads", "1"}, common...)...)
	got := standInCalls(t, log, oneLayers...)
	want := []string{
		"ingest --catalog -t - -b .layers/L0/layerfs REPO", "transaction REPO", "publish REPO",
		"ingest --catalog -t - -b .layers/L1/layerfs REPO", "transaction REPO", "publish REPO",
		"transaction REPO", "publish REPO",
	}
	if !slices.Equal(got, want) {
		t.Errorf("a conversion ran\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	st := store.New(repo)
	one := reg.Host + "/apps/one:v1"
	if b, err := os.ReadFile(filepath.Join(st.PublicPath(one), "app", "v1")); err != nil || string(b) != "I am one\n" {
		t.Errorf("the public path reads %q, %v", b, err)
	}
	hex0 := strings.TrimPrefix(sha256Of(oneLayers[0]), "sha256:")
	for _, dir := range []string{".layers", ".layers/" + hex0[:2], ".layers/" + hex0[:2] + "/" + hex0 + "/layerfs",
		".flat", filepath.Dir(flatRelOf(oneCfg)), flatRelOf(oneCfg)} {
		if _, err := os.Stat(filepath.Join(repo, dir, ".cvmfscatalog")); err != nil {
			t.Errorf("no nested catalog in %s: %v", dir, err)
		}
	}
	if _, err := os.Stat(filepath.Join(st.LayerMeta(sha256Of(oneLayers[0])), "layer.json")); err != nil {
		t.Errorf("the layer's description was not published: %v", err)
	}
	runFlatbed(t, 0, "verify", mpRepo, "--store-root", storeRoot)

	// Converted again, unchanged: nothing to publish, not one transaction.
	os.Remove(log)
	runFlatbed(t, 0, append([]string{"convert", writeRawWishlist(t, reg.Host, []string{"apps/one:v1"}), "-i"}, common...)...)
	if got := standInCalls(t, log, oneLayers...); len(got) != 0 {
		t.Errorf("an unchanged re-run ran %q", got)
	}
	// Its public path lost: one transaction makes it again (the image's two layer.ingested
	// both reach the flattener; the second finds nothing left to change).
	if err := os.Remove(st.PublicPath(one)); err != nil {
		t.Fatal(err)
	}
	runFlatbed(t, 0, append([]string{"convert", writeRawWishlist(t, reg.Host, []string{"apps/one:v1"}), "-i"}, common...)...)
	if got := standInCalls(t, log, oneLayers...); !slices.Equal(got, []string{"transaction REPO", "publish REPO"}) {
		t.Errorf("linking a lost public path again ran %q, want one transaction", got)
	}
	if b, err := os.ReadFile(filepath.Join(st.PublicPath(one), "app", "v1")); err != nil || string(b) != "I am one\n" {
		t.Errorf("the public path made again reads %q, %v", b, err)
	}

	// A file removed from its flat tree (the publisher's mount is walked against the tally
	// the flattener recorded): the resolver removes the tree in one transaction, the
	// flattener builds it again in another; no layer is ingested again.
	os.Remove(log)
	if err := os.Remove(filepath.Join(repo, flatRelOf(oneCfg), "app", "v1")); err != nil {
		t.Fatal(err)
	}
	out, _ := runFlatbed(t, 0, append([]string{"convert", writeRawWishlist(t, reg.Host, []string{"apps/one:v1"}), "-i"}, common...)...)
	if strings.Contains(out, "already converted") {
		t.Errorf("a flat tree with a file removed is already converted:\n%s", out)
	}
	if got, want := standInCalls(t, log, oneLayers...), []string{"transaction REPO", "publish REPO", "transaction REPO", "publish REPO"}; !slices.Equal(got, want) {
		t.Errorf("mending a flat tree ran %q, want %q", got, want)
	}
	if b, err := os.ReadFile(filepath.Join(st.PublicPath(one), "app", "v1")); err != nil || string(b) != "I am one\n" {
		t.Errorf("the mended flat tree reads %q, %v", b, err)
	}
	runFlatbed(t, 0, "verify", mpRepo, "--store-root", storeRoot)

	// A second image sharing the base: only its own layer is ingested.
	os.Remove(log)
	runFlatbed(t, 0, append([]string{"convert", writeRawWishlist(t, reg.Host, []string{"apps/two:v1"}), "-i", "--max-concurrent-downloads", "1"}, common...)...)
	// The base's origin in a transaction, the new layer's ingest and transaction, the flat tree's transaction.
	got = standInCalls(t, log, twoLayers...)
	want = []string{"transaction REPO", "publish REPO", "ingest --catalog -t - -b .layers/L1/layerfs REPO", "transaction REPO", "publish REPO",
		"transaction REPO", "publish REPO"}
	if !slices.Equal(got, want) {
		t.Errorf("converting a second image over the same base ran\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}

	// delete-image: one transaction.
	os.Remove(log)
	runFlatbed(t, 0, append([]string{"delete-image", mpRepo, one}, common...)...)
	if got := standInCalls(t, log); !slices.Equal(got, []string{"transaction REPO", "publish REPO"}) {
		t.Errorf("delete-image ran %q", got)
	}
	if _, err := os.Lstat(st.PublicPath(one)); err == nil {
		t.Error("the public path is still there")
	}
	// gc: one transaction removing the deleted image's own layer and tree; then none at all.
	os.Remove(log)
	out, _ = runFlatbed(t, 0, append([]string{"gc", mpRepo, "--min-age", "-1s"}, common...)...)
	if got := standInCalls(t, log); !slices.Equal(got, []string{"transaction REPO", "publish REPO"}) {
		t.Errorf("gc ran %q", got)
	}
	if st.HasLayer(sha256Of(oneLayers[1])) || st.HasFlat(sha256Of(oneCfg)) || !st.HasLayer(sha256Of(oneLayers[0])) || !st.HasFlat(sha256Of(twoCfg)) {
		t.Errorf("gc removed the wrong things:\n%s", out)
	}
	os.Remove(log)
	runFlatbed(t, 0, append([]string{"gc", mpRepo, "--min-age", "-1s"}, common...)...)
	if got := standInCalls(t, log); len(got) != 0 {
		t.Errorf("gc with nothing to remove ran %q", got)
	}

	// create-podman-store changes the store in place: one transaction.
	os.Remove(log)
	runFlatbed(t, 0, append([]string{"create-podman-store", mpRepo}, common...)...)
	if got := standInCalls(t, log); !slices.Equal(got, []string{"transaction REPO", "publish REPO"}) {
		t.Errorf("create-podman-store ran %q", got)
	}

	// Mountless: a delete is one ingest --delete of the public path and the metadata.
	os.Remove(log)
	two := reg.Host + "/apps/two:v1"
	runFlatbed(t, 0, "delete-image", mpRepo, two, "--store-root", storeRoot, "--state-dir", t.TempDir(), "--store-backend", mpRepo+"=cvmfs-ingest")
	if got, want := standInCalls(t, log), []string{"ingest --delete " + two + " --delete .metadata/" + two + " REPO"}; !slices.Equal(got, want) {
		t.Errorf("a mountless delete-image ran %q, want %q", got, want)
	}
	if _, err := os.Lstat(st.PublicPath(two)); err == nil {
		t.Error("the mountless delete left the public path")
	}
	runFlatbed(t, 2, "gc", mpRepo, "--store-root", storeRoot, "--store-backend", mpRepo+"=zfs")
}

// A conversion that cannot finish publishes nothing: a layer download cut off by the
// registry kills the ingest streaming it, before it sees an end, and aborts (abort -f), each
// try; a SIGTERM while a transaction is open aborts it.
func TestCVMFSBackendAborts(t *testing.T) {
	reg := harness.StartRegistry(t)
	base := tarOf(t, map[string]string{"etc/os-release": "ID=flatbed-cvmfs\n"})
	noise := make([]byte, 256<<10)
	rand.Read(noise)
	layers, _ := cvmfsImage(t, reg.Host, "apps/cut", base, "v1", string(noise))

	t.Run("registry failure", func(t *testing.T) {
		px, err := faultproxy.Start(reg.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer px.Close()
		px.Add(faultproxy.Rule{Method: "GET", Path: blobRE("apps/cut", sha256Of(layers[1])), Fault: faultproxy.Truncate(200 << 10)}) // past the pipe's buffer: the stand-in has begun
		storeRoot := t.TempDir()
		t.Cleanup(func() { store.RemoveAll(storeRoot) })
		repo := filepath.Join(storeRoot, mpRepo)
		os.MkdirAll(repo, 0o755)
		_, log := cvmfsStandIn(t, repo)
		out, _ := runFlatbed(t, 1, "convert", writeRawWishlist(t, px.Host, []string{"apps/cut:v1"}), "-i", "--max-concurrent-downloads", "1",
			"--registry-timeout", "2s", "--store-root", storeRoot, "--state-dir", t.TempDir(), "--store-backend", mpRepo+"=cvmfs")
		got := standInCalls(t, log, layers...)
		if len(got) < 5 || !slices.Equal(got[:3], []string{"ingest --catalog -t - -b .layers/L0/layerfs REPO", "transaction REPO", "publish REPO"}) {
			t.Fatalf("calls\n  %s", strings.Join(got, "\n  "))
		}
		for i := 3; i < len(got); i += 2 {
			if got[i] != "ingest --catalog -t - -b .layers/L1/layerfs REPO" || i+1 >= len(got) || got[i+1] != "abort -f REPO" {
				t.Errorf("after the base layer, want only ingests of the cut layer each followed by abort -f; got\n  %s\n%s", strings.Join(got, "\n  "), out)
				break
			}
		}
		b, _ := os.ReadFile(log)
		if strings.Count(string(b), "end ingest") != 1 {
			t.Errorf("an ingest of the cut layer ended on its own (it must be killed first):\n%s", b)
		}
	})

	t.Run("SIGTERM", func(t *testing.T) {
		storeRoot := t.TempDir()
		t.Cleanup(func() { store.RemoveAll(storeRoot) })
		repo := filepath.Join(storeRoot, mpRepo)
		os.MkdirAll(repo, 0o755)
		_, log := cvmfsStandIn(t, repo)
		t.Setenv("STANDIN_SLOW", "transaction")
		t.Setenv("STANDIN_SLEEP", "2")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		p := startChild(t, ctx, "convert", flatbedBin, "convert", writeRawWishlist(t, reg.Host, []string{"apps/cut:v1"}), "-i",
			"--max-concurrent-downloads", "1", "--store-root", storeRoot, "--state-dir", t.TempDir(), "--store-backend", mpRepo+"=cvmfs")
		deadline := time.Now().Add(time.Minute)
		for !bytes.Contains(readLog(log), []byte("begin transaction")) {
			if time.Now().After(deadline) || p.exited() {
				t.Fatalf("no transaction began: %s\n%s", p.state(), readLog(log))
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		code, ok := p.wait(time.Minute)
		if !ok || code != 143 {
			t.Errorf("convert ended with %d (%v), want 143 after SIGTERM", code, ok)
		}
		got := standInCalls(t, log, layers...)
		want := []string{"ingest --catalog -t - -b .layers/L0/layerfs REPO", "transaction REPO", "abort -f REPO"}
		if !slices.Equal(got, want) {
			t.Errorf("after a SIGTERM in a transaction:\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
	})
}

func readLog(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}

// Conversions into one repository, in two processes sharing a NATS server, never
// overlap their cvmfs_server sessions (an ingest, or a transaction up to its publish or
// abort): the repository's lease is taken across processes.
func TestCVMFSTransactionsNeverOverlap(t *testing.T) {
	reg := harness.StartRegistry(t)
	base := tarOf(t, map[string]string{"etc/os-release": "ID=flatbed-cvmfs\n"})
	var refs []string
	for i := range 4 {
		tag := fmt.Sprintf("v%d", i)
		cvmfsImage(t, reg.Host, "apps/many", base, tag, "I am "+tag+"\n")
		refs = append(refs, "apps/many:"+tag)
	}
	url, _ := startNATSServerProcess(t)
	storeRoot := t.TempDir()
	t.Cleanup(func() { store.RemoveAll(storeRoot) })
	repo := filepath.Join(storeRoot, mpRepo)
	os.MkdirAll(repo, 0o755)
	_, log := cvmfsStandIn(t, repo)
	t.Setenv("STANDIN_SLEEP", "0.05")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// Two processes run every stage, sharing the work (and the leases) through NATS.
	var serves []*childProcess
	for i := range 2 {
		serves = append(serves, startChild(t, context.Background(), fmt.Sprintf("serve-%d", i), flatbedBin, "serve", "--nats", url,
			"--store-root", storeRoot, "--state-dir", t.TempDir(), "--metrics-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--store-backend", mpRepo+"=cvmfs"))
	}
	convert := startChild(t, ctx, "convert", flatbedBin, "convert", writeRawWishlist(t, reg.Host, refs), "-i", "--nats", url,
		"--wait-for-stages", "--store-root", storeRoot)
	convert.expectExit0(t)
	for _, p := range serves {
		p.stop(t, time.Minute)
	}
	b := readLog(log)
	open := ""
	sessions := 0
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		switch {
		case f[0] == "begin" && (f[1] == "transaction" || f[1] == "ingest"):
			if open != "" {
				t.Fatalf("%q began while %s was open:\n%s", l, open, b)
			}
			open, sessions = f[1], sessions+1
		case f[0] == "begin" && f[1] == "publish", f[0] == "begin" && f[1] == "abort" && open != "ingest":
			if open != "transaction" {
				t.Fatalf("%q outside a transaction:\n%s", l, b)
			}
		case l == "end publish" || l == "end abort" || (l == "end ingest" && open == "ingest"):
			open = ""
		}
	}
	// 4 images: the shared base once, 4 own layers, 4 flat trees, origins of the base.
	if sessions < 13 {
		t.Errorf("%d sessions, want at least 13:\n%s", sessions, b)
	}
	for _, r := range refs {
		if _, err := os.Stat(filepath.Join(store.New(repo).PublicPath(reg.Host+"/"+r), "app")); err != nil {
			t.Errorf("%s: %v", r, err)
		}
	}
}

// Mountless (--store-backend REPO=cvmfs-ingest), everything goes through cvmfs_server
// ingest: each layer and its description, the catalogs of .layers, .layers/<xx>, .flat and
// .flat/<xx> (empty ingests, once), the flat tree built locally and streamed, the public
// symlink, and last the metadata; never a transaction.
func TestCVMFSMountlessConversion(t *testing.T) {
	reg := harness.StartRegistry(t)
	storeRoot := t.TempDir()
	t.Cleanup(func() { store.RemoveAll(storeRoot) })
	repo := filepath.Join(storeRoot, mpRepo)
	os.MkdirAll(repo, 0o755)
	_, log := cvmfsStandIn(t, repo)
	base := tarOf(t, map[string]string{"etc/os-release": "ID=flatbed-cvmfs\n"})
	layers, cfg := cvmfsImage(t, reg.Host, "apps/gw", base, "v1", "I am mountless\n")
	runFlatbed(t, 0, "convert", writeRawWishlist(t, reg.Host, []string{"apps/gw:v1"}), "-i", "--max-concurrent-downloads", "1",
		"--store-root", storeRoot, "--state-dir", t.TempDir(), "--store-backend", mpRepo+"="+"cvmfs-ingest")
	shard := func(b []byte) string { return strings.TrimPrefix(sha256Of(b), "sha256:")[:2] }
	flat := flatRelOf(cfg)
	want := []string{
		"ingest --catalog -t - -b .layers/L0/layerfs REPO", "ingest --catalog -t - -b .layers REPO", "ingest --catalog -t - -b .layers/" + shard(layers[0]) + " REPO",
		"ingest -t - -b .layers/L0/.metadata REPO",
		"ingest --catalog -t - -b .layers/L1/layerfs REPO",
	}
	if shard(layers[1]) != shard(layers[0]) {
		want = append(want, "ingest --catalog -t - -b .layers/"+shard(layers[1])+" REPO")
	}
	want = append(want, "ingest -t - -b .layers/L1/.metadata REPO",
		"ingest --catalog -t - -b .flat REPO", "ingest --catalog -t - -b "+filepath.Dir(flat)+" REPO", "ingest --catalog -t - -b "+flat+" REPO",
		"ingest -t - -b "+reg.Host+"/apps REPO", "ingest -t - -b .metadata/"+reg.Host+"/apps/gw:v1 REPO")
	if got := standInCalls(t, log, layers...); !slices.Equal(got, want) {
		t.Errorf("a mountless conversion ran\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	st := store.New(repo)
	name := reg.Host + "/apps/gw:v1"
	for path, body := range map[string]string{"app/v1": "I am mountless\n", "etc/os-release": "ID=flatbed-cvmfs\n"} {
		if b, err := os.ReadFile(filepath.Join(st.PublicPath(name), path)); err != nil || string(b) != body {
			t.Errorf("%s reads %q, %v", path, b, err)
		}
	}
	if _, err := os.Stat(filepath.Join(st.PublicPath(name), ".singularity.d", "env", "90-environment.sh")); err != nil {
		t.Error(err)
	}
	runFlatbed(t, 0, "verify", mpRepo, "--store-root", storeRoot)
	// Converted: the next run asks cvmfs_server nothing.
	os.Remove(log)
	out, _ := runFlatbed(t, 0, "convert", writeRawWishlist(t, reg.Host, []string{"apps/gw:v1"}), "-i",
		"--store-root", storeRoot, "--state-dir", t.TempDir(), "--store-backend", mpRepo+"="+"cvmfs-ingest")
	if got := standInCalls(t, log); len(got) != 0 || !strings.Contains(out, "already converted") {
		t.Errorf("an unchanged image ran %q:\n%s", got, out)
	}
	// The public path lost: one ingest of the link; the image's second layer.ingested finds
	// everything in place, and the flat tree and metadata, unchanged, are not ingested again.
	if err := os.Remove(st.PublicPath(name)); err != nil {
		t.Fatal(err)
	}
	runFlatbed(t, 0, "convert", writeRawWishlist(t, reg.Host, []string{"apps/gw:v1"}), "-i",
		"--store-root", storeRoot, "--state-dir", t.TempDir(), "--store-backend", mpRepo+"="+"cvmfs-ingest")
	if got, want := standInCalls(t, log), []string{"ingest -t - -b " + reg.Host + "/apps REPO"}; !slices.Equal(got, want) {
		t.Errorf("linking a lost public path again mountless ran %q, want %q", got, want)
	}
	if b, err := os.ReadFile(filepath.Join(st.PublicPath(name), "app", "v1")); err != nil || string(b) != "I am mountless\n" {
		t.Errorf("the public path made again reads %q, %v", b, err)
	}
}

// A multi-arch image (-m) into CernVM-FS is announced only once it is published: the
// notification file's publish_flat_image line of the image follows the cvmfs_server publish
// of the transaction that completed it (the stand-in notes each publish in the same file as
// it ends, after a second's work), never the other way round.
func TestCVMFSMultiArchAnnouncedAfterPublish(t *testing.T) {
	reg := harness.StartRegistry(t)
	good := pushMultiArch(t, reg.Host)
	storeRoot := t.TempDir()
	t.Cleanup(func() { store.RemoveAll(storeRoot) })
	repo := filepath.Join(storeRoot, mpRepo)
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	inner, log := cvmfsStandIn(t, repo)
	notif := filepath.Join(t.TempDir(), "notifications.jsonl")
	outer := filepath.Join(t.TempDir(), "cvmfs_server")
	script := "#!/bin/sh\n'" + inner + "' \"$@\" || exit $?\n" +
		"if [ \"$1\" = publish ]; then sleep 1; echo 'STANDIN published' >> '" + notif + "'; fi\n"
	if err := os.WriteFile(outer, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FLATBED_CVMFS_SERVER", outer)
	runFlatbed(t, 0, "convert", writeMultiWishlist(t, reg.Host, good.Ref()), "-m", "-i", "--store-root", storeRoot, "--state-dir", t.TempDir(),
		"-n", notif, "--store-backend", mpRepo+"=cvmfs")
	b, err := os.ReadFile(notif)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	lastPublish, announced := -1, -1
	for i, l := range lines {
		switch {
		case l == "STANDIN published":
			lastPublish = i
		case strings.Contains(l, `"`+n.ActionPublishFlatImage+`"`) && announced < 0:
			announced = i
		}
	}
	if announced < 0 || lastPublish < 0 || announced < lastPublish {
		t.Errorf("the image was announced at line %d, the last cvmfs_server publish ended at line %d:\n%s\ncalls:\n%s",
			announced, lastPublish, strings.Join(lines, "\n"), strings.Join(standInCalls(t, log), "\n"))
	}
	pub := reg.Host + "/" + good.Ref()
	st := store.New(repo)
	if got, err := os.ReadFile(filepath.Join(cvmfsResolve(t, st, pub, "x86_64"), "etc", "arch")); err != nil || string(got) != "amd64\n" {
		t.Errorf("the amd64 tree's etc/arch reads %q, %v", got, err)
	}
}
