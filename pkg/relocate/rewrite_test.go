package relocate

import (
	"strings"
	"testing"
)

const deployment = `# The web front end.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, tier: "nginx:1.25 is only a label"}
spec:
  replicas: 2
  template:
    spec:
      initContainers:
        - name: migrate
          image: "registry.example/team/migrate:3"   # quoted
      containers:
        - name: nginx
          image: nginx:1.25
          args: ["--config", "nginx-config"]
        - name: sidecar
          image: 'docker.io/library/busybox@sha256:1111111111111111111111111111111111111111111111111111111111111111'
        - name: untouched
          image: registry.example/team/other:1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports:
    - port: 80   # the same port
`

// Every container image of a Kubernetes Deployment that the mapping names is replaced by its
// relocated reference, whichever way it is written (short Docker Hub name, quoted, the key
// with a scheme); labels, arguments, comments, quoting, other images and the second
// document stay byte for byte.
func TestRewriteYAML(t *testing.T) {
	m := Mapping{
		"nginx:1.25":                             "mirror.example/m/library-nginx-aaaa:1.25@sha256:2222222222222222222222222222222222222222222222222222222222222222",
		"http://registry.example/team/migrate:3": "mirror.example/m/team-migrate-bbbb:3@sha256:3333333333333333333333333333333333333333333333333333333333333333",
		"busybox@sha256:1111111111111111111111111111111111111111111111111111111111111111": "mirror.example/m/library-busybox-cccc@sha256:1111111111111111111111111111111111111111111111111111111111111111",
		"registry.example/team/absent:9": "mirror.example/m/team-absent-dddd:9@sha256:4444444444444444444444444444444444444444444444444444444444444444",
	}
	got, n, err := m.RewriteYAML([]byte(deployment))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.NewReplacer(
		`image: "registry.example/team/migrate:3"`, `image: "mirror.example/m/team-migrate-bbbb:3@sha256:3333333333333333333333333333333333333333333333333333333333333333"`,
		`image: nginx:1.25`, `image: mirror.example/m/library-nginx-aaaa:1.25@sha256:2222222222222222222222222222222222222222222222222222222222222222`,
		`image: 'docker.io/library/busybox@sha256:1111111111111111111111111111111111111111111111111111111111111111'`,
		`image: 'mirror.example/m/library-busybox-cccc@sha256:1111111111111111111111111111111111111111111111111111111111111111'`,
	).Replace(deployment)
	if string(got) != want {
		t.Errorf("rewritten:\n%s\nwant:\n%s", got, want)
	}
	if n != 3 {
		t.Errorf("replaced %d, want 3", n)
	}
	// Nothing to replace: the file comes back unchanged.
	if same, n, err := (Mapping{"redis:7": "x.example/redis:7@sha256:" + strings.Repeat("5", 64)}).RewriteYAML([]byte(deployment)); err != nil || n != 0 || string(same) != deployment {
		t.Errorf("unmapped file changed (%d, %v)", n, err)
	}
}

// A mapped image written as a block scalar cannot be replaced in place: the error names the
// line; a file that is not YAML is refused.
func TestRewriteYAMLRefuses(t *testing.T) {
	m := Mapping{"nginx:1.25": "mirror.example/nginx:1.25@sha256:" + strings.Repeat("2", 64)}
	if _, _, err := m.RewriteYAML([]byte("image: >-\n  nginx:1.25\n")); err == nil || !strings.Contains(err.Error(), "line 1:") {
		t.Errorf("block scalar: %v", err)
	}
	if _, _, err := m.RewriteYAML([]byte("a: [1, 2\n")); err == nil {
		t.Error("broken YAML accepted")
	}
}
