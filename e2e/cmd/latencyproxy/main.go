// Command latencyproxy puts a registry behind a slow network for `make bench`: every request
// waits -delay before it is answered, and every answer's body is sent at no more than -rate
// bytes a second (per request, as one connection over a long path gets). It prints its
// address (127.0.0.1:PORT) on the first line of stdout and serves until SIGINT or SIGTERM.
//
//	go run ./cmd/latencyproxy [-delay 50ms] [-rate 1048576] 127.0.0.1:5000
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"flatbed.dev/e2e/faultproxy"
)

func main() {
	delay := flag.Duration("delay", 50*time.Millisecond, "wait before answering each request")
	rate := flag.Int("rate", 1<<20, "bytes a second of each answer's body (0: no cap)")
	pause := flag.Duration("pause", 10*time.Millisecond, "pause between the pieces of a capped body")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: latencyproxy [flags] REGISTRY_HOST:PORT\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 || *delay < 0 || *rate < 0 || *pause <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	p, err := faultproxy.Start(flag.Arg(0))
	if err != nil {
		fmt.Fprintf(os.Stderr, "latencyproxy: %v\n", err)
		os.Exit(1)
	}
	f := faultproxy.Fault{Delay: *delay}
	if *rate > 0 {
		f = faultproxy.Slow(*delay, max(1, int(float64(*rate)*pause.Seconds())), *pause)
	}
	p.Add(faultproxy.Rule{Path: ".", Fault: f})
	fmt.Println(p.Host)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	_ = p.Close()
}
