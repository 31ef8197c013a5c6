package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// pprofReadHeaderTimeout bounds a profiling request's headers; the body of a CPU profile or
// trace takes as long as its ?seconds= asks, so there is no write timeout.
const pprofReadHeaderTimeout = 10 * time.Second

// startPprof serves Go's profiling endpoints (net/http/pprof) at /debug/pprof/ on addr
// until the returned stop is called; nothing when addr is empty. The endpoints have no
// authentication and show the hub's internals (goroutines, heap, command line), so a
// listener beyond loopback is logged as a warning.
func startPprof(addr string, logger *slog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--pprof-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // also the named profiles: heap, goroutine, ...
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log := logger.With("component", "pprof")
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: pprofReadHeaderTimeout,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			log.Error("profiling server stopped; the hub keeps running without it", "err", err)
		}
	}()
	if ip := l.Addr().(*net.TCPAddr).IP; ip.IsLoopback() {
		log.Info("profiling endpoints served", "address", "http://"+l.Addr().String()+"/debug/pprof/")
	} else {
		log.Warn("profiling endpoints served beyond loopback, without authentication", "address", l.Addr().String())
	}
	return func() {
		_ = hs.Close()
		<-done
	}, nil
}
