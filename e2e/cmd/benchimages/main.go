// Command benchimages pushes the images `make bench` measures to a plain-http
// registry and prints one reference (HOST/NAME:TAG) per line. Sizes and
// contents are deterministic (fixed seeds), so two runs measure the same bytes.
//
//	go run ./cmd/benchimages [-set classic] [flags] 127.0.0.1:5000
//
// The sets:
//
//	classic   the demo images (many small files, shared base layer) and -images
//	          pseudo-random images of -layers layers, one -layer-mib MiB file each
//	big       one image of -layers layers holding -mib MiB in about -files
//	          files and directories, a fifth of the bytes random and the rest
//	          text, so it compresses as real images do (about 2.4:1)
//	wishlist  -images tiny images, each in a repository of its own
//	shared    -images images on one base of two layers (-base-mib MiB in all),
//	          each with one layer of its own of -layer-mib MiB
//	huge      one image whose one layer is mostly a file of -mib MiB of
//	          pseudo-random bytes, built through a temporary file under -tmp
//	scale     -images images of -layers layers of -layer-kib KiB, none shared
//
// -layers-out FILE writes "DIGEST SIZE" for each layer of each image pushed.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"flatbed.dev/pkg/imagegen"
)

func main() {
	var o options
	flag.StringVar(&o.set, "set", "classic", "which images: classic, big, wishlist, shared, huge or scale")
	flag.IntVar(&o.images, "images", 4, "number of images (classic: random ones besides the demo)")
	flag.Int64Var(&o.layers, "layers", 4, "layers per image")
	flag.Int64Var(&o.layerMiB, "layer-mib", 8, "MiB of random file content per layer (classic, shared)")
	flag.Int64Var(&o.layerKiB, "layer-kib", 512, "KiB of random file content per layer (scale)")
	flag.Int64Var(&o.baseMiB, "base-mib", 16, "MiB in the shared base's two layers (shared)")
	flag.Int64Var(&o.mib, "mib", 240, "MiB of file content in the image (big, huge)")
	flag.IntVar(&o.files, "files", 7200, "files and directories in the image (big)")
	flag.StringVar(&o.tmp, "tmp", os.TempDir(), "directory for the huge layer's temporary file")
	layersOut := flag.String("layers-out", "", "write DIGEST SIZE of every layer of every image to this file")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: benchimages [flags] REGISTRY_HOST:PORT\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	host := flag.Arg(0)

	imgs, cleanup, err := o.build()
	defer cleanup()
	if err != nil {
		fail(err)
	}
	if err := imagegen.Push(context.Background(), host, imgs); err != nil {
		fail(err)
	}
	if *layersOut != "" {
		if err := writeLayers(*layersOut, imgs); err != nil {
			fail(err)
		}
	}
	for _, n := range imgs {
		fmt.Println(host + "/" + n.Ref())
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "benchimages: %v\n", err)
	os.Exit(1)
}

// options are the command line's sizes.
type options struct {
	set                                 string
	images, files                       int
	layers, layerMiB, layerKiB, baseMiB int64
	mib                                 int64
	tmp                                 string
}

// build makes the images of the set; cleanup removes what they keep on disk.
func (o options) build() (imgs []imagegen.Named, cleanup func(), err error) {
	cleanup = func() {}
	switch o.set {
	case "classic":
		imgs, err = classic(o.images, o.layers, o.layerMiB)
	case "big":
		imgs, err = big(o.layers, o.mib, o.files)
	case "wishlist":
		imgs, err = wishlist(o.images)
	case "shared":
		imgs, err = shared(o.images, o.baseMiB, o.layerMiB)
	case "huge":
		var n imagegen.Named
		n, cleanup, err = huge(o.tmp, o.mib)
		imgs = []imagegen.Named{n}
	case "scale":
		imgs, err = scale(o.images, o.layers, o.layerKiB)
	default:
		err = fmt.Errorf("unknown set %q: choose classic, big, wishlist, shared, huge or scale", o.set)
	}
	return imgs, cleanup, err
}

// writeLayers writes "DIGEST SIZE" for every layer of every image, in order.
func writeLayers(path string, imgs []imagegen.Named) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, n := range imgs {
		var layers []v1.Layer
		if layers, err = n.Image.Layers(); err != nil {
			break
		}
		for _, l := range layers {
			d, err := l.Digest()
			if err != nil {
				return err
			}
			size, err := l.Size()
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "%s %d\n", d, size)
		}
	}
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
