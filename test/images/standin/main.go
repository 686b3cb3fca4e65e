// Command standin plays an application on the real test node. One binary serves every stand-in image (nginx:1.7.9,
// httpd:2.2.31, tomcat:7 ...); what it does comes from its environment, baked into an image tag or set in a
// manifest:
//
//	PORT=80            the port it serves HTTP on (/, /healthz, /metrics)
//	VERSION=1.7.9      what / answers (default: the image tag baked in at push time, else "dev")
//	READY=true         false: /healthz answers 503 (an HTTP readiness probe fails, the port is open);
//	                   never: the port never opens (a hung start; a TCP probe fails too)
//	READY_AFTER=3m     the port opens only after this long (a slow start)
//	CRASH_AFTER=5s     exit 1 after this long (a crash loop under a restart policy); start: at once, port closed
//	ERROR_RATE=0.2     this share of requests to / answers 500, spread evenly
//	LATENCY=300ms      added to every request to /
//
// /metrics exports http_requests_total{code} and the http_request_duration_seconds histogram, as common HTTP
// exporters name them. The image has no shell, so `standin get URL` (for `kubectl exec`) fetches a URL, and
// `standin version` prints VERSION.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	b, err := parseBehaviour(getenv)
	if err != nil {
		fmt.Fprintln(stderr, "standin:", err)
		return 2
	}
	if len(args) > 0 {
		switch args[0] {
		case "version":
			fmt.Fprintln(stdout, b.version)
			return 0
		case "get":
			return get(args[1:], stdout, stderr)
		default:
			fmt.Fprintf(stderr, "standin: unknown command %q (version, get URL)\n", args[0])
			return 2
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := serve(ctx, b, stdout); err != nil {
		fmt.Fprintln(stderr, "standin:", err)
		return 1
	}
	return 0
}

// behaviour is what the environment asks of the stand-in.
type behaviour struct {
	port       int
	version    string
	healthy    bool // /healthz answers 200
	never      bool // the port never opens
	readyAfter time.Duration
	crashAfter time.Duration
	crashStart bool // exit 1 before opening the port, as an app with a broken configuration does
	errorRate  float64
	latency    time.Duration
}

func parseBehaviour(getenv func(string) string) (behaviour, error) {
	b := behaviour{port: 80, version: "dev", healthy: true}
	var errs []error
	if v := getenv("PORT"); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 1 || p > 65535 {
			errs = append(errs, fmt.Errorf("PORT=%q: want a port number", v))
		}
		b.port = p
	}
	if v := getenv("VERSION"); v != "" {
		b.version = v
	}
	switch v := getenv("READY"); v {
	case "", "true":
	case "false":
		b.healthy = false
	case "never":
		b.never = true
	default:
		errs = append(errs, fmt.Errorf("READY=%q: want true, false or never", v))
	}
	if getenv("CRASH_AFTER") == "start" {
		b.crashStart = true
	}
	for name, d := range map[string]*time.Duration{"READY_AFTER": &b.readyAfter, "CRASH_AFTER": &b.crashAfter, "LATENCY": &b.latency} {
		if b.crashStart && name == "CRASH_AFTER" {
			continue
		}
		if v := getenv(name); v != "" {
			parsed, err := time.ParseDuration(v)
			if err != nil || parsed < 0 {
				errs = append(errs, fmt.Errorf("%s=%q: want a duration like 30s", name, v))
			}
			*d = parsed
		}
	}
	if v := getenv("ERROR_RATE"); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r < 0 || r > 1 {
			errs = append(errs, fmt.Errorf("ERROR_RATE=%q: want a share between 0 and 1", v))
		}
		b.errorRate = r
	}
	return b, errors.Join(errs...)
}

// failing reports whether the nth request (from 0) answers 500: exactly floor(n*rate) of the first n requests
// fail, spread evenly, so a short test sees the rate it asked for.
func failing(n uint64, rate float64) bool {
	return uint64(float64(n+1)*rate) > uint64(float64(n)*rate)
}

func serve(ctx context.Context, b behaviour, stdout io.Writer) error {
	if b.crashStart {
		return errors.New("CRASH_AFTER=start: exiting before opening the port")
	}
	if b.crashAfter > 0 {
		time.AfterFunc(b.crashAfter, func() {
			fmt.Fprintf(stdout, "crashing after %s as CRASH_AFTER asks\n", b.crashAfter)
			os.Exit(1)
		})
	}
	if b.never {
		fmt.Fprintln(stdout, "READY=never: not opening the port")
		<-ctx.Done()
		return nil
	}
	if b.readyAfter > 0 {
		fmt.Fprintf(stdout, "starting slowly: the port opens in %s\n", b.readyAfter)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(b.readyAfter):
		}
	}
	reg := prometheus.NewRegistry()
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "http_requests_total", Help: "HTTP requests to / by status code.",
	}, []string{"code"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "http_request_duration_seconds", Help: "Time to answer requests to /.", Buckets: prometheus.DefBuckets,
	}, []string{"code"})
	reg.MustRegister(requests, duration)

	var mu sync.Mutex
	var served uint64
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		mu.Lock()
		fail := failing(served, b.errorRate)
		served++
		mu.Unlock()
		if b.latency > 0 {
			time.Sleep(b.latency)
		}
		code := http.StatusOK
		if fail {
			code = http.StatusInternalServerError
		}
		w.WriteHeader(code)
		fmt.Fprintf(w, "standin %s\n", b.version)
		label := strconv.Itoa(code)
		requests.WithLabelValues(label).Inc()
		duration.WithLabelValues(label).Observe(time.Since(start).Seconds())
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if !b.healthy {
			http.Error(w, "not ready (READY=false)", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Addr: ":" + strconv.Itoa(b.port), Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	fmt.Fprintf(stdout, "standin %s listening on :%d\n", b.version, b.port)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shutdown)
	}
}

// get fetches a URL and prints the body; with the pod's service account mounted it authenticates to the API server.
func get(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: standin get URL")
		return 2
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(args[0])
	if err != nil {
		fmt.Fprintln(stderr, "standin get:", err)
		return 1
	}
	defer resp.Body.Close()
	if _, err := io.Copy(stdout, resp.Body); err != nil {
		fmt.Fprintln(stderr, "standin get:", err)
		return 1
	}
	if resp.StatusCode >= 400 {
		fmt.Fprintln(stderr, "standin get:", resp.Status)
		return 1
	}
	return 0
}
