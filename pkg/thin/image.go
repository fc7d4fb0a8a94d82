package thin

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// MarkerEnv comes first in every thin image's Env; the graph driver and
// users tell thin images apart by it.
const MarkerEnv = "CVMFS_IMAGE=true"

// Image builds the thin image for m: a Docker v2 image with one layer
// holding thin.json (mode 0644). Like DUCC's `docker import --change`, the
// config gets Env = CVMFS_IMAGE=true then every KEY=VALUE of src, and
// src's Cmd; nothing else (no labels, entrypoint or working dir). src may
// be nil. Times are zero so the same input always gives the same digest.
func Image(m Manifest, src *v1.ConfigFile) (v1.Image, error) {
	data, err := Marshal(m)
	if err != nil {
		return nil, err
	}
	tarred, err := tarOne(FileName, data)
	if err != nil {
		return nil, fmt.Errorf("building the thin layer: %w", err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tarred)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("building the thin layer: %w", err)
	}
	// plainLayer hides tarball's Descriptor, whose empty (non-nil)
	// annotations map makes Manifest() differ from the pushed JSON.
	img, err := mutate.AppendLayers(empty.Image, plainLayer{layer})
	if err != nil {
		return nil, fmt.Errorf("adding the thin layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading the thin config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Env = []string{MarkerEnv}
	if src != nil {
		if src.OS != "" {
			cf.OS, cf.Architecture, cf.Variant, cf.OSVersion = src.OS, src.Architecture, src.Variant, src.OSVersion
		}
		for _, e := range src.Config.Env {
			if strings.Contains(e, "=") { // DUCC drops entries without a value
				cf.Config.Env = append(cf.Config.Env, e)
			}
		}
		cf.Config.Cmd = append([]string(nil), src.Config.Cmd...)
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("setting the thin config: %w", err)
	}
	return img, nil
}

func tarOne(name string, data []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, err
	}
	if _, err := tw.Write(data); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type plainLayer struct{ v1.Layer }
