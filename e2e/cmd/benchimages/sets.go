package main

import (
	"fmt"
	"math/rand"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"flatbed.dev/pkg/imagegen"
)

// classic is the set `make bench` has always measured: the demo images and n random ones.
func classic(n int, layers, layerMiB int64) ([]imagegen.Named, error) {
	imgs, err := randomImages("bench/random%d", fmt.Sprintf("%dx%dmib", layers, layerMiB), n, layers, layerMiB<<20, 1000)
	return append(imagegen.Demo(), imgs...), err
}

// wishlist is n tiny images, each in its own repository, as a wishlist of many images is.
func wishlist(n int) ([]imagegen.Named, error) {
	return randomImages("bench/wishlist/img%02d", "v1", n, 1, 2048, 5000)
}

// shared is n images on one base of two layers (baseMiB in all), each with a layer of its own.
func shared(n int, baseMiB, ownMiB int64) ([]imagegen.Named, error) {
	var base []v1.Layer
	for i, size := range []int64{baseMiB << 20 * 3 / 4, baseMiB << 20 / 4} {
		l, err := random.Layer(size, types.DockerLayer, random.WithSource(rand.NewSource(int64(7000+i))))
		if err != nil {
			return nil, fmt.Errorf("base layer %d: %w", i, err)
		}
		base = append(base, l)
	}
	var imgs []imagegen.Named
	for i := range n {
		own, err := random.Layer(ownMiB<<20, types.DockerLayer, random.WithSource(rand.NewSource(int64(7100+i))))
		if err != nil {
			return nil, fmt.Errorf("image %d: %w", i, err)
		}
		img, err := imageOf(append(append([]v1.Layer(nil), base...), own)...)
		if err != nil {
			return nil, fmt.Errorf("image %d: %w", i, err)
		}
		imgs = append(imgs, imagegen.Named{Name: fmt.Sprintf("bench/shared/app%02d", i), Tag: "v1", Image: img})
	}
	return imgs, nil
}

// scale is n images of layers random layers of layerKiB each, none shared.
func scale(n int, layers, layerKiB int64) ([]imagegen.Named, error) {
	return randomImages("bench/scale/img%03d", fmt.Sprintf("%dx%dkib", layers, layerKiB), n, layers, layerKiB<<10, 9000)
}

// randomImages is n images named by the format (with the image's number) of layers random
// layers, one file of size bytes each. Image i's layers come from the seeded source seed+i:
// every layer differs, every run is the same.
func randomImages(format, tag string, n int, layers, size, seed int64) ([]imagegen.Named, error) {
	var imgs []imagegen.Named
	for i := range n {
		img, err := random.Image(size, layers, random.WithSource(rand.NewSource(seed+int64(i))))
		if err != nil {
			return nil, fmt.Errorf("random image %d of %s: %w", i, format, err)
		}
		imgs = append(imgs, imagegen.Named{Name: fmt.Sprintf(format, i), Tag: tag, Image: img})
	}
	return imgs, nil
}

// imageOf is a linux/amd64 image of the layers.
func imageOf(layers ...v1.Layer) (v1.Image, error) {
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: "amd64",
		OS:           "linux",
		Config:       v1.Config{Cmd: []string{"/bin/sh"}, WorkingDir: "/"},
		RootFS:       v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, err
	}
	return mutate.AppendLayers(img, layers...)
}
