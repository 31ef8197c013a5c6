package cli

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestTuneMemory(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]string
		profiling bool
		wantGC    int
		wantRate0 bool
	}{
		{name: "defaults", wantGC: DefaultGCPercent, wantRate0: true},
		{name: "GOGC set", env: map[string]string{"GOGC": "200"}, wantGC: 77, wantRate0: true},
		{name: "profiling", profiling: true, wantGC: DefaultGCPercent},
		{name: "GODEBUG memprofilerate", env: map[string]string{"GODEBUG": "gctrace=1,memprofilerate=1"}, wantGC: DefaultGCPercent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			oldGC, oldRate := debug.SetGCPercent(77), runtime.MemProfileRate // 77: "left alone"
			t.Cleanup(func() { debug.SetGCPercent(oldGC); runtime.MemProfileRate = oldRate })
			runtime.MemProfileRate = 4096
			TuneMemory(func(k string) string { return tc.env[k] }, tc.profiling)
			if got := debug.SetGCPercent(77); got != tc.wantGC {
				t.Errorf("GC percent = %d, want %d", got, tc.wantGC)
			}
			if got := runtime.MemProfileRate == 0; got != tc.wantRate0 {
				t.Errorf("MemProfileRate = %d, want zero: %v", runtime.MemProfileRate, tc.wantRate0)
			}
		})
	}
}
