package imagegen

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
)

// FilesRandomShare is the share of FilesTar's files with random (incompressible) content; the
// others hold text. With it a layer compresses about as issue 9's 99 MB / 237 MB image does.
const FilesRandomShare = 0.1

// FilesTar is the tar of an application-like layer (make bench's big image, and the lazy-pull
// benchmark's layer): about entries files and directories under root whose files hold total
// bytes in all, file sizes log-uniform over three decades, scaled to the total. The same seed
// gives the same bytes.
func FilesTar(seed uint64, root string, total int64, entries int) ([]byte, error) {
	rng := rand.New(rand.NewPCG(seed, seed))
	dirs := max(entries/10, 1)
	files := max(entries-dirs, 1)
	weights := make([]float64, files)
	sum := 0.0
	for i := range weights {
		weights[i] = math.Exp(rng.Float64() * math.Log(2000))
		sum += weights[i]
	}

	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: fmt.Sprintf("%s/d%03d/", root, d), Mode: 0o755, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
	}
	text := newTextSource(rng)
	for f, w := range weights {
		size := int64(float64(total) * w / sum)
		var content io.Reader = text
		if rng.Float64() < FilesRandomShare {
			content = rand.NewChaCha8([32]byte{byte(f), byte(f >> 8), byte(seed), byte(seed >> 8)})
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("%s/d%03d/f%05d", root, rng.IntN(dirs), f), Mode: 0o644, Size: size, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := io.CopyN(tw, content, size); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return raw.Bytes(), nil
}

// textSource reads as endless text: lines of words from a fixed vocabulary.
type textSource struct {
	rng   *rand.Rand
	words [][]byte
	buf   []byte // the current line
	line  []byte // what is left of it
}

func newTextSource(rng *rand.Rand) *textSource {
	words := make([][]byte, 1024)
	for i := range words {
		w := make([]byte, 2+rng.IntN(9))
		for j := range w {
			w[j] = 'a' + byte(rng.IntN(26))
		}
		words[i] = w
	}
	return &textSource{rng: rng, words: words}
}

func (t *textSource) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(t.line) == 0 {
			t.buf = t.buf[:0]
			for range 4 + t.rng.IntN(12) {
				t.buf = append(t.buf, t.words[t.rng.IntN(len(t.words))]...)
				t.buf = append(t.buf, ' ')
			}
			t.buf[len(t.buf)-1] = '\n'
			t.line = t.buf
		}
		c := copy(p[n:], t.line)
		t.line = t.line[c:]
		n += c
	}
	return n, nil
}
