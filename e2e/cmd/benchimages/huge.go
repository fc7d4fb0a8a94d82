package main

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"flatbed.dev/pkg/imagegen"
)

// huge is one image whose one layer holds a small file and a file of mib MiB of pseudo-random
// bytes (ChaCha8: fast, and gzip cannot shrink it). The layer is written once to a file
// under dir, hashing as it goes, and pushed from there: nothing holds it in memory.
// cleanup removes the file.
func huge(dir string, mib int64) (imagegen.Named, func(), error) {
	f, err := os.CreateTemp(dir, "benchimages-huge-*.tar.gz")
	if err != nil {
		return imagegen.Named{}, func() {}, err
	}
	cleanup := func() { os.Remove(f.Name()) }
	l, err := writeHugeLayer(f, mib<<20)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return imagegen.Named{}, cleanup, fmt.Errorf("huge layer: %w", err)
	}
	img, err := imageOf(l)
	if err != nil {
		return imagegen.Named{}, cleanup, err
	}
	return imagegen.Named{Name: "bench/huge", Tag: fmt.Sprintf("%dmib", mib), Image: img}, cleanup, nil
}

// writeHugeLayer writes the gzip layer to f and returns it as a layer read back from f.
func writeHugeLayer(f *os.File, size int64) (v1.Layer, error) {
	blobHash, tarHash := sha256.New(), sha256.New()
	buffered := bufio.NewWriterSize(io.MultiWriter(f, blobHash), 1<<20)
	zw, err := gzip.NewWriterLevel(buffered, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(io.MultiWriter(zw, tarHash))
	readme := []byte("one big file of pseudo-random bytes\n")
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "README", Mode: 0o644, Size: int64(len(readme))}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(readme); err != nil {
		return nil, err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "data/random.bin", Mode: 0o644, Size: size}); err != nil {
		return nil, err
	}
	if _, err := io.CopyN(tw, rand.NewChaCha8([32]byte{'f', 'l', 'a', 't', 'b', 'e', 'd'}), size); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if err := buffered.Flush(); err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return partial.CompressedToLayer(&fileLayer{
		path:   f.Name(),
		size:   fi.Size(),
		digest: v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", blobHash.Sum(nil))},
		diffID: v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", tarHash.Sum(nil))},
	})
}

// fileLayer is a gzip layer in a file whose digests are known.
type fileLayer struct {
	path           string
	size           int64
	digest, diffID v1.Hash
}

func (l *fileLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *fileLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *fileLayer) Size() (int64, error)                { return l.size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error) { return types.DockerLayer, nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.path) }
