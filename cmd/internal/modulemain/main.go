package modulemain

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes of the sample modules.
const (
	ExitOK      = 0 // stopped by a signal, or finished
	ExitFailure = 1 // could not connect, or failed while running
	ExitConfig  = 2 // bad configuration
)

// RunFunc is a module's whole life: it runs until ctx is done (or its work is finished) and
// returns the process exit code. It reads its environment only through getenv and writes
// its logs only to stderr, so tests can run it in-process.
type RunFunc func(ctx context.Context, getenv func(string) string, stderr io.Writer) int

// Main runs run with the process environment and stderr, a context cancelled on SIGTERM or
// SIGINT, and exits with the code run returns.
func Main(run RunFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := run(ctx, os.Getenv, os.Stderr)
	stop()
	os.Exit(code)
}
