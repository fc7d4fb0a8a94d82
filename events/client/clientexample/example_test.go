package clientexample_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/nats-io/nats.go"

	"flatbed.dev/events/client"
	"flatbed.dev/pkg/imagegen"
)

// A program asks a running flatbed pipeline for one image and waits for it: the client, a
// NATS connection and a wish are all it needs.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Set-up: a registry holding demo/hello:1.0, and a pipeline (see startPipeline).
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	if err := imagegen.Push(ctx, host, imagegen.Demo()[:1]); err != nil {
		fmt.Println(err)
		return
	}
	dir, err := os.MkdirTemp("", "flatbed-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	url, stop, err := startPipeline(ctx, dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()

	// The program.
	nc, err := nats.Connect(url)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	c, err := client.New(nc, client.WithSource("example/automation"))
	if err != nil {
		fmt.Println(err)
		return
	}
	r, err := c.Convert(ctx, client.Wish{Image: "http://" + host + "/demo/hello:1.0", CvmfsRepo: "unpacked.example.org"})
	if err != nil {
		fmt.Println(err)
		return
	}
	img := r.Completed.Image
	fmt.Println("completed", img.Repository+":"+img.Tag)
	message, err := os.ReadFile(filepath.Join(r.Completed.Repository, r.Completed.PublicPath, "app", "message.txt"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(string(message))
	// Output:
	// completed demo/hello:1.0
	// Hello from flatbed demo 1.0!
}
