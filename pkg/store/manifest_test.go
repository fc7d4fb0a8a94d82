package store

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadManifestConfig(t *testing.T) {
	tests := []struct {
		name    string
		content *string // nil: no file
		want    string
		wantErr bool
	}{
		{name: "docker manifest", content: ptr(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",` +
			`"config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":7,"digest":"` + configDigest + `"},"layers":[]}`),
			want: configDigest},
		{name: "no config", content: ptr(`{"schemaVersion":2}`), want: ""},
		{name: "not JSON", content: ptr(`{"config":`), wantErr: true},
		{name: "missing file", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "manifest.json")
			if tt.content != nil {
				if err := os.WriteFile(p, []byte(*tt.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := ReadManifestConfig(p)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ReadManifestConfig error = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ReadManifestConfig = %q, want %q", got, tt.want)
			}
		})
	}
}

func ptr(s string) *string { return &s }
