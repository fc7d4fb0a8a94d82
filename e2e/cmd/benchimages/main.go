// Command benchimages pushes the images `make bench` measures to a plain-http
// registry and prints one reference (HOST/NAME:TAG) per line: the demo images
// (many small files, shared base layer) and N pseudo-random images (one big
// file per layer). Sizes and contents are deterministic (fixed seeds), so two
// runs measure the same bytes.
//
//	go run ./cmd/benchimages [-images 4] [-layers 4] [-layer-mib 8] 127.0.0.1:5000
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand"
	"os"

	"github.com/google/go-containerregistry/pkg/v1/random"

	"flatbed.dev/pkg/imagegen"
)

func main() {
	images := flag.Int("images", 4, "number of random images")
	layers := flag.Int64("layers", 4, "layers per random image")
	layerMiB := flag.Int64("layer-mib", 8, "MiB of random file content per layer")
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

	imgs := imagegen.Demo()
	for i := 0; i < *images; i++ {
		// One seeded source per image: every layer differs, every run is the same.
		src := rand.NewSource(int64(1000 + i))
		img, err := random.Image(*layerMiB<<20, *layers, random.WithSource(src))
		if err != nil {
			fmt.Fprintf(os.Stderr, "benchimages: random image %d: %v\n", i, err)
			os.Exit(1)
		}
		imgs = append(imgs, imagegen.Named{
			Name:  fmt.Sprintf("bench/random%d", i),
			Tag:   fmt.Sprintf("%dx%dmib", *layers, *layerMiB),
			Image: img,
		})
	}
	if err := imagegen.Push(context.Background(), host, imgs); err != nil {
		fmt.Fprintf(os.Stderr, "benchimages: %v\n", err)
		os.Exit(1)
	}
	for _, n := range imgs {
		fmt.Println(host + "/" + n.Ref())
	}
}
