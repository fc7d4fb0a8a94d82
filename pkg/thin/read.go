package thin

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ErrNotThin is returned by Read for an image without thin.json.
var ErrNotThin = errors.New("not a thin image: no " + FileName)

// Read returns the thin.json of a thin image.
func Read(img v1.Image) (Manifest, error) {
	layers, err := img.Layers()
	if err != nil {
		return Manifest{}, fmt.Errorf("listing layers: %w", err)
	}
	for i := len(layers) - 1; i >= 0; i-- {
		data, err := find(layers[i], FileName)
		if err != nil {
			return Manifest{}, err
		}
		if data != nil {
			return Unmarshal(data)
		}
	}
	return Manifest{}, ErrNotThin
}

func find(layer v1.Layer, name string) ([]byte, error) {
	rc, err := layer.Uncompressed()
	if err != nil {
		return nil, fmt.Errorf("opening layer: %w", err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading layer: %w", err)
		}
		if path.Clean("/"+hdr.Name) == "/"+name && hdr.Typeflag == tar.TypeReg {
			data, err := io.ReadAll(io.LimitReader(tr, 16<<20))
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", name, err)
			}
			return data, nil
		}
	}
}
