package relocate

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"

	"flatbed.dev/pkg/registry/registrytest"
)

func TestRelocate(t *testing.T) {
	src, dst := registrytest.Serve(t, nil), registrytest.Serve(t, nil)
	img, _ := random.Image(128, 1)
	d := push(t, src+"/team/app:1", img)
	p, _ := ParsePrefix(dst + "/r")
	images := []string{src + "/team/app:1", src + "/team/gone:1", src + "/team/app:1"}
	m, err := Relocate(context.Background(), p.Flat, images, testOptions()...)
	if err == nil || !strings.Contains(err.Error(), src+"/team/gone:1") {
		t.Fatalf("got %v, want the missing image named", err)
	}
	want := dockerString(mustFlat(t, dst+"/r", mustParse(t, src+"/team/app:1"))) + "@" + d.String()
	if len(m) != 1 || m[src+"/team/app:1"] != want {
		t.Errorf("mapping %v, want only %s", m, want)
	}
}

func TestPlanIsOneToOne(t *testing.T) {
	p, _ := ParsePrefix("example.com/mirror")
	images := []string{"quay.io/team/app:1", "docker.io/team/app:2"}
	if _, err := Plan(p.Nested, images); err == nil || !strings.Contains(err.Error(), "example.com/mirror/team/app") {
		t.Errorf("two registries' team/app nested into one repository: got %v", err)
	}
	moves, err := Plan(p.Flat, append(images, "quay.io/team/app:3"))
	if err != nil {
		t.Fatal(err)
	}
	if len(moves) != 3 || moves[0].Target.Repository == moves[1].Target.Repository || moves[0].Target.Repository != moves[2].Target.Repository {
		t.Errorf("flat plan %+v", moves)
	}
}

func TestMappingFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mapping.json")
	m := Mapping{
		"istio/proxyv2:1":      "example.com/user/istio-proxyv2-f93a2cacc6cafa0474a2d6990a4dd1a0:1@" + dig,
		"docker.io/a/b@" + dig: "example.com/user/a-b-" + md5hex("docker.io/a/b") + "@" + dig,
	}
	if err := m.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	got, err := ReadMapping(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["istio/proxyv2:1"] != m["istio/proxyv2:1"] {
		t.Errorf("read back %v", got)
	}
	data, _ := os.ReadFile(path)
	if i, j := strings.Index(string(data), "docker.io/a/b"), strings.Index(string(data), "istio/proxyv2"); i < 0 || i > j {
		t.Errorf("keys not sorted:\n%s", data)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("left in the directory: %v", entries)
	}
}
