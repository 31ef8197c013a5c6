package main

import (
	"context"
	"time"
)

// The memory fault's pace and ceiling: fast enough to cross a 64 MiB limit within half
// a second (a run takes a few), bounded so that a forgotten module does not take the machine.
const (
	leakChunk    = 8 << 20
	leakInterval = 50 * time.Millisecond
	leakMax      = 512 << 20
)

// leaked holds the leaked memory for the life of the process.
var leaked [][]byte

// leak allocates leakChunk every leakInterval, writes to every page so that it is
// resident, and keeps it, until leakMax or ctx ends.
func leak(ctx context.Context) {
	t := time.NewTicker(leakInterval)
	defer t.Stop()
	for total := 0; total < leakMax; total += leakChunk {
		b := make([]byte, leakChunk)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		leaked = append(leaked, b)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
