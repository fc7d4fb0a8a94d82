package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"flatbed.dev/pkg/imagegen"
)

// big is one image of n layers holding mib MiB in about entries files and directories: the
// shape of a real application image (many small files, a few big ones), unlike the classic
// set's one random file per layer.
func big(n, mib int64, entries int) ([]imagegen.Named, error) {
	layers := make([]v1.Layer, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			layers[i], errs[i] = filesLayer(uint64(11000+i), fmt.Sprintf("opt/bench/layer%d", i), mib<<20/n, entries/int(n))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("big image layer %d: %w", i, err)
		}
	}
	img, err := imageOf(layers...)
	if err != nil {
		return nil, err
	}
	return []imagegen.Named{{Name: "bench/big", Tag: fmt.Sprintf("%dx%dmib", n, mib), Image: img}}, nil
}

// filesLayer builds a gzip layer of imagegen.FilesTar.
func filesLayer(seed uint64, root string, total int64, entries int) (v1.Layer, error) {
	raw, err := imagegen.FilesTar(seed, root, total, entries)
	if err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	blob := gz.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blob)), nil })
}
