package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"flatbed.dev/pkg/registry/registrytest"
	"flatbed.dev/pkg/relocate"
	"flatbed.dev/pkg/relocate/relocatetest"
)

// A relocate command line that names nothing, mixes its inputs or has no valid prefix is a
// usage error, before anything starts.
func TestRelocateUsage(t *testing.T) {
	state := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no prefix", []string{"relocate", "r.example/a:1"}, `"repository-prefix" not set`},
		{"bad prefix", []string{"relocate", "--repository-prefix", "r.example/m:1", "r.example/a:1"}, "cannot have a tag or digest"},
		{"nothing to relocate", []string{"relocate", "--repository-prefix", "r.example/m"}, "nothing to relocate"},
		{"bundle without output", []string{"relocate", "--repository-prefix", "r.example/m", "--bundle", "b.json"}, "--output-bundle"},
		{"bundle and refs", []string{"relocate", "--repository-prefix", "r.example/m", "--bundle", "b.json", "--output-bundle", "o.json", "r.example/a:1"}, "not both"},
		{"bad image", []string{"relocate", "--repository-prefix", "r.example/m", "--state-dir", state, "http://r.example/A//b:1"}, "r.example/A//b:1"},
		{"two registries into one", []string{"relocate", "--repository-prefix", "r.example/m", "--no-flatten", "--state-dir", state, "a.example/x/y:1", "b.example/x/y:1"}, "would both be relocated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), tt.args, &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("exit %d, want %d with %q in\n%s", code, exitUsage, tt.want, stderr.String())
			}
		})
	}
}

// REFs go through the pipeline (resolver, relocator, notifier in this process): the target
// serves every image under its duffle name with the source's digest, the mapping file says
// so, and a target that rewrites a digest fails the run naming the image.
func TestRelocateThroughPipeline(t *testing.T) {
	src := registrytest.Serve(t, nil)
	img, _ := random.Image(512, 2)
	digest := pushImage(t, src+"/team/app:1", img)
	refs := []string{"http://" + src + "/team/app:1", "http://" + src + "/team/app@" + digest.String()}

	dst := registrytest.Serve(t, nil)
	mapping := filepath.Join(t.TempDir(), "mapping.json")
	stdout := relocateRun(t, 0, "--repository-prefix", "http://"+dst+"/mirror", "--mapping", mapping, refs[0], refs[1])
	m, err := relocate.ReadMapping(mapping)
	if err != nil {
		t.Fatal(err)
	}
	prefix, _ := relocate.ParsePrefix("http://" + dst + "/mirror")
	for _, ref := range refs {
		orig, _ := relocate.ParseImage(ref)
		target, _ := prefix.Flat(orig)
		want := target.Registry + "/" + target.Repository + target.Reference()
		if target.Digest == "" {
			want += "@" + digest.String()
		}
		if m[ref] != want {
			t.Errorf("mapping[%s] = %q, want %q", ref, m[ref], want)
		}
		if got := servedDigest(t, m[ref]); got != digest {
			t.Errorf("%s serves %s, want %s", m[ref], got, digest)
		}
		if !strings.Contains(stdout, ref+" -> "+want) {
			t.Errorf("stdout does not say %s -> %s:\n%s", ref, want, stdout)
		}
	}

	rewriter := registrytest.Serve(t, relocatetest.RewriteManifests)
	stdout = relocateRun(t, exitSomeFailed, "--repository-prefix", "http://"+rewriter+"/mirror", refs[0])
	if !strings.Contains(stdout, "FAILED") || !strings.Contains(stdout, refs[0]) || !strings.Contains(stdout, "digest not preserved") {
		t.Errorf("stdout does not name the image whose digest changed:\n%s", stdout)
	}
}

// relocateRun runs relocate with args on a state directory and store of its own and wants
// exit status code; it returns stdout.
func relocateRun(t *testing.T, code int, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	args = append([]string{"relocate", "--state-dir", filepath.Join(dir, "state"), "--store-root", filepath.Join(dir, "store"), "--max-attempts", "2"}, args...)
	var stdout, stderr bytes.Buffer
	if got := run(ctx, args, &stdout, &stderr); got != code {
		t.Fatalf("flatbed %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), got, code, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func pushImage(t *testing.T, ref string, img v1.Image) v1.Hash {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// servedDigest is the digest a registry serves ref (registry/repository[:tag]@digest) with,
// asked by its tag when it has one.
func servedDigest(t *testing.T, ref string) v1.Hash {
	t.Helper()
	if base, _, ok := strings.Cut(ref, "@"); ok && strings.Contains(base[strings.LastIndex(base, "/"):], ":") {
		ref = base
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Get(r)
	if err != nil {
		t.Fatal(err)
	}
	return d.Digest
}
