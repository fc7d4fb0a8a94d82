package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"flatbed.dev/e2e/faultproxy"
	"flatbed.dev/e2e/harness"
	"flatbed.dev/events"
	"flatbed.dev/pkg/dumbremote"
	"flatbed.dev/pkg/dumbremote/s3test"
)

// pushImage writes img to ref (host:port/repo:tag, plain http) and returns its digest.
func pushImage(t *testing.T, ref string, img v1.Image) string {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// exportedEvents reads the image.exported events a run left in its state directory.
func exportedEvents(t *testing.T, state string) map[string]events.ImageExported {
	t.Helper()
	out := map[string]events.ImageExported{}
	for _, m := range readStoredEvents(t, filepath.Join(state, "jetstream")) {
		if m.Subject != events.Subject(events.ImageExportedType) {
			continue
		}
		var e events.ImageExported
		if err := json.Unmarshal(m.Data, &e); err != nil {
			t.Fatal(err)
		}
		out[e.Job.Image] = e
	}
	return out
}

// podmanLoad loads archive into a podman store of its own and returns the Id podman gives
// ref.
func podmanLoad(t *testing.T, archive, ref string) string {
	t.Helper()
	if _, err := exec.LookPath("podman"); err != nil {
		t.Fatal("podman is not installed: scripts/install-test-deps.sh installs it")
	}
	tmp, err := os.MkdirTemp("", "fb-pm-") // podman refuses a run root over 50 characters
	if err != nil {
		t.Fatal(err)
	}
	base := []string{"--root", filepath.Join(tmp, "graph"), "--runroot", filepath.Join(tmp, "run"), "--storage-driver", "vfs"}
	t.Cleanup(func() {
		_ = exec.Command("podman", append(base, "system", "reset", "--force")...).Run()
		_ = os.RemoveAll(tmp)
	})
	podman := func(args ...string) string {
		out, err := exec.Command("podman", append(base, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	t.Logf("podman load: %s", podman("load", "-i", archive))
	return podman("image", "inspect", "--format", "{{.Id}}", ref)
}

// Two images sharing a base exported through the pipeline to a directory remote and to a real
// S3-compatible server (s3rver): the second export writes only its own blobs (the exporter's
// image.exported counts them); imported back into a fresh registry under a prefix, every
// digest is the source's (skopeo inspect --raw); imported to an archive, podman loads it and
// gives the image the config's digest as its id; the remote verifies.
func TestExportImportThroughRemotes(t *testing.T) {
	src := harness.StartRegistry(t)
	s3 := s3test.Start(t, "flatbed")
	base, err := random.Image(4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	extra, _ := random.Image(2048, 1)
	ls, _ := extra.Layers()
	app, err := mutate.AppendLayers(base, ls...)
	if err != nil {
		t.Fatal(err)
	}
	baseDigest := pushImage(t, src.Host+"/team/base:1", base)
	appDigest := pushImage(t, src.Host+"/team/app:2", app)
	baseRef, appRef := "http://"+src.Host+"/team/base:1", "http://"+src.Host+"/team/app:2"
	appConfig, _ := app.ConfigName()

	for kind, remoteURL := range map[string]string{"dir": "dir://" + t.TempDir() + "/remote", "s3": s3.Remote("images")} {
		t.Run(kind, func(t *testing.T) {
			state := t.TempDir()
			common := []string{"--state-dir", state, "--store-root", t.TempDir()}
			out, _ := runFlatbed(t, 0, append([]string{"export", remoteURL, baseRef}, common...)...)
			t.Logf("export base:\n%s", out)
			out, _ = runFlatbed(t, 0, append([]string{"export", remoteURL, appRef}, common...)...)
			t.Logf("export app:\n%s", out)
			if want := src.Host + "/team/app:2@" + appDigest; !strings.Contains(out, "-> "+want) {
				t.Errorf("export printed %q, want the exported reference %s", out, want)
			}
			ev := exportedEvents(t, state)
			if e, ok := ev[baseRef]; !ok || e.BlobsUploaded != 4 || e.BlobsPresent != 0 {
				t.Errorf("base export: %+v; want 4 blobs written (2 layers, config, manifest)", e)
			}
			if e, ok := ev[appRef]; !ok || e.BlobsUploaded != 3 || e.BlobsPresent != 2 {
				t.Errorf("app export: %d written, %d present; want only its own 3 blobs (layer, config, manifest) written, the base's 2 layers not transferred",
					e.BlobsUploaded, e.BlobsPresent)
			}

			dst := harness.StartRegistry(t)
			out, _ = runFlatbed(t, 0, "import", remoteURL, src.Host+"/team/base:1", src.Host+"/team/app:2", "--to", dst.URL()+"/imported")
			t.Logf("import:\n%s", out)
			for repo, want := range map[string]string{"team/base:1": baseDigest, "team/app:2": appDigest} {
				if got := rawDigest(t, dst.Host+"/imported/"+repo); got != want {
					t.Errorf("imported %s has digest %s, want the source's %s", repo, got, want)
				}
			}

			// Again: the registry has the image, so nothing is uploaded (a HEAD finds it).
			before := len(dst.RequestLog(t))
			runFlatbed(t, 0, "import", remoteURL, src.Host+"/team/app:2", "--to", dst.URL()+"/imported")
			heads := 0
			for _, q := range dst.RequestLog(t)[before:] {
				if q.Method == "POST" || q.Method == "PUT" && strings.Contains(q.URI, "/blobs/") || q.Method == "PATCH" {
					t.Errorf("a second import sent %s: the registry had that blob", q)
				}
				if q.Method == "HEAD" {
					heads++
				}
			}
			if heads == 0 {
				t.Error("the second import asked the registry nothing: the access log shows nothing of it")
			}

			archive := filepath.Join(t.TempDir(), "app.tar")
			// By an id prefix, as dogestry resolved images.
			out, _ = runFlatbed(t, 0, "import", remoteURL, appConfig.Hex[:12], "--to-archive", archive)
			t.Logf("import to archive:\n%s", out)
			if id := podmanLoad(t, archive, src.Host+"/team/app:2"); id != appConfig.Hex {
				t.Errorf("podman gives the loaded image id %s, want the config digest %s", id, appConfig.Hex)
			}

			out, _ = runFlatbed(t, 0, "verify-remote", remoteURL)
			t.Logf("verify-remote: %s", out)
			if !strings.Contains(out, "0 unfinished") || !strings.Contains(out, "0 problem(s)") {
				t.Errorf("verify-remote: %s", out)
			}
		})
	}
}

// temporaries lists the writers' temporary files below a directory remote.
func temporaries(t *testing.T, root string) []string {
	t.Helper()
	var tmp []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".tmp-") {
			tmp = append(tmp, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return tmp
}

// Two flatbed export processes writing images that share a base to one directory remote at
// the same time leave it whole: it verifies and both images import with their digests.
func TestConcurrentExportProcesses(t *testing.T) {
	src := harness.StartRegistry(t)
	base, _ := random.Image(256<<10, 2)
	digests := map[string]string{}
	for _, repo := range []string{"team/one", "team/two"} {
		extra, _ := random.Image(128<<10, 1)
		ls, _ := extra.Layers()
		img, err := mutate.AppendLayers(base, ls...)
		if err != nil {
			t.Fatal(err)
		}
		digests[repo] = pushImage(t, src.Host+"/"+repo+":1", img)
	}
	remoteURL := "dir://" + t.TempDir() + "/remote"
	var procs []*childProcess
	for repo := range digests {
		procs = append(procs, startChild(t, context.Background(), "export "+repo, flatbedBin, "export", remoteURL, "http://"+src.Host+"/"+repo+":1",
			"--state-dir", t.TempDir(), "--store-root", t.TempDir()))
	}
	for _, p := range procs {
		p.expectExit0(t)
	}
	out, _ := runFlatbed(t, 0, "verify-remote", remoteURL)
	if !strings.Contains(out, "0 unfinished") || !strings.Contains(out, "0 problem(s)") {
		t.Errorf("verify-remote: %s", out)
	}
	r, err := dumbremote.Open(context.Background(), remoteURL)
	if err != nil {
		t.Fatal(err)
	}
	for repo, want := range digests {
		_, art, err := r.Import(context.Background(), src.Host+"/"+repo+":1")
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := art.(v1.Image).Digest(); got.String() != want {
			t.Errorf("%s on the remote is %s, want %s", repo, got, want)
		}
	}
}

// An export with --compress zstd keeps the layers recompressed on the remote, and its import
// is a valid image all the same: podman loads the archive and gives it the original config's
// digest as its id.
func TestExportZstdLoads(t *testing.T) {
	src := harness.StartRegistry(t)
	img, err := random.Image(64<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	pushImage(t, src.Host+"/team/z:1", img)
	remoteURL := "dir://" + t.TempDir() + "/remote"
	runFlatbed(t, 0, "export", "--compress", "zstd", remoteURL, "http://"+src.Host+"/team/z:1", "--state-dir", t.TempDir(), "--store-root", t.TempDir())
	layers, _ := img.Layers()
	for _, l := range layers {
		d, _ := l.Digest()
		if _, err := os.Stat(filepath.Join(strings.TrimPrefix(remoteURL, "dir://"), "blobs", "sha256", d.Hex)); err == nil {
			t.Errorf("the gzip layer %s is on the remote: it should be kept recompressed", d)
		}
	}
	archive := filepath.Join(t.TempDir(), "z.tar")
	runFlatbed(t, 0, "import", remoteURL, src.Host+"/team/z:1", "--to-archive", archive)
	cfg, _ := img.ConfigName()
	if id := podmanLoad(t, archive, src.Host+"/team/z:1"); id != cfg.Hex {
		t.Errorf("podman gives the loaded image id %s, want the config digest %s", id, cfg.Hex)
	}
}

// An exporter killed with SIGKILL while it streams a layer leaves a remote the verifier
// accepts (no blob whose content is not its name, no reference to an incomplete image), and
// the same export run again completes it: the image imports with its digest.
func TestExportKilledMidway(t *testing.T) {
	reg := harness.StartRegistry(t)
	s3 := s3test.Start(t, "flatbed")
	img, err := random.Image(1<<20, 4)
	if err != nil {
		t.Fatal(err)
	}
	digest := pushImage(t, reg.Host+"/team/big:1", img)
	layers, _ := img.Layers()
	slow, _ := layers[3].Digest()
	px, err := faultproxy.Start(reg.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	for kind, remoteURL := range map[string]string{"dir": "dir://" + t.TempDir() + "/remote", "s3": s3.Remote("killed")} {
		t.Run(kind, func(t *testing.T) {
			// One layer trickles (16 KiB every 50 ms): the exporter is writing it when killed.
			rule := px.Add(faultproxy.Rule{Method: "GET", Path: blobRE("team/big", slow.String()), Fault: faultproxy.Slow(0, 16<<10, 50*time.Millisecond)})
			state := t.TempDir()
			args := []string{"export", remoteURL, "http://" + px.Host + "/team/big:1", "--state-dir", state, "--store-root", t.TempDir()}
			p := startChild(t, context.Background(), "export "+kind, flatbedBin, args...)
			r, err := dumbremote.Open(context.Background(), remoteURL)
			if err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(60 * time.Second)
			for rule.Seen() == 0 {
				if time.Now().After(deadline) || p.exited() {
					t.Fatalf("the slow layer was not asked for (%s)", p.state())
				}
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(500 * time.Millisecond) // half-way through the trickle
			if p.exited() {
				t.Fatalf("the export ended before it was killed: %s", p.state())
			}
			if err := p.cmd.Process.Kill(); err != nil { // SIGKILL, this one process
				t.Fatal(err)
			}
			p.wait(10 * time.Second)
			rep, err := r.Verify(context.Background())
			if err != nil {
				t.Fatalf("after the kill the remote does not verify: %v", err)
			}
			t.Logf("after the kill: %d blobs, %d unfinished, %d references", rep.Blobs, len(rep.Unfinished), rep.References)
			if rep.Blobs == 0 {
				t.Error("nothing was written before the kill: the test did not kill the export mid-way")
			}
			if kind == "s3" && rep.Temporary == 0 {
				t.Error("no half-uploaded object in tmp/ after the kill: the test did not kill the export while it wrote a blob")
			}
			if kind == "dir" && len(temporaries(t, r.Location.Path)) == 0 {
				t.Error("no half-written temporary after the kill: the test did not kill the export while it wrote a blob")
			}
			if _, err := r.Resolve(context.Background(), px.Host+"/team/big:1"); !dumbremote.IsNotFound(err) {
				t.Errorf("a reference to the image exists before its last layer was written: %v", err)
			}
			px.Remove(rule)
			out, _ := runFlatbed(t, 0, args...)
			t.Logf("re-run: %s", out)
			rep, err = r.Verify(context.Background())
			if err != nil || len(rep.Unfinished) != 0 || rep.References == 0 {
				t.Errorf("after the re-run: %+v, %v", rep, err)
			}
			if kind == "dir" {
				if tmp := temporaries(t, r.Location.Path); len(tmp) != 0 {
					t.Errorf("the killed writer's temporaries are still there after the re-run: %v", tmp)
				}
			}
			_, art, err := r.Import(context.Background(), px.Host+"/team/big:1")
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := art.(v1.Image).Digest(); got.String() != digest {
				t.Errorf("the remote gives %s, want %s", got, digest)
			}
			if err := os.RemoveAll(state); err != nil {
				t.Log(err)
			}
		})
	}
}
