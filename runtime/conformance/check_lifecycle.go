package conformance

import (
	"context"
	"fmt"
	"time"
)

// checkSigterm sends SIGTERM (a container: docker stop) and waits sigtermGraceSeconds for
// the module to exit with code 0, as docker stop and the edge agent do; a module still
// running then is killed.
func (h *harness) checkSigterm(ctx context.Context) Result {
	res := Result{Name: CheckSigterm}
	if exited := h.moduleExited(); exited != "" {
		res.Verdict, res.Evidence = Fail, exited+" before it was sent SIGTERM"
		res.Details = lastLines(h.inst.Output(), 5)
		return res
	}
	grace := duration(h.spec.SigtermGraceSeconds)
	start := h.now()
	stop := h.inst.Terminate
	if gs, ok := h.inst.(GracefulStopper); ok {
		// The engine stops it as the edge agent would have it do (docker stop); the harness
		// still judges the grace period itself and kills a module that outlives it.
		stop = func() error { return gs.Stop(grace) }
	}
	if err := stop(); err != nil {
		res.Verdict, res.Evidence = Fail, err.Error()
		return res
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-h.inst.Done():
	case <-t.C:
	case <-ctx.Done():
	}
	res.Duration = h.now().Sub(start)
	select {
	case <-h.inst.Done():
	default:
		_ = h.inst.Kill()
		<-h.inst.Done()
		res.Verdict = Fail
		res.Evidence = fmt.Sprintf("still running %v after SIGTERM; killed", grace)
		return res
	}
	switch code := h.inst.ExitCode(); {
	case code == -1:
		res.Verdict = Fail
		res.Evidence = fmt.Sprintf("ended by the signal itself %v after SIGTERM (no handler, so no clean shutdown), want exit code 0", ms(res.Duration))
		return res
	case code != 0:
		res.Verdict = Fail
		res.Evidence = fmt.Sprintf("exited with code %d %v after SIGTERM, want 0", code, ms(res.Duration))
		res.Details = lastLines(h.inst.Output(), 5)
		return res
	}
	res.Verdict = Pass
	res.Evidence = fmt.Sprintf("exited with code 0 %v after SIGTERM (grace %v)", ms(res.Duration), grace)
	return res
}

// minSamples is the fewest samples the resource checks judge on.
const minSamples = 2

// checkMemory compares the module's peak resident set size over the run with
// limits.memoryMB.
func (h *harness) checkMemory(sampled bool, u usage) Result {
	res := Result{Name: CheckMemory}
	if why := unsampled(sampled, u); why != "" {
		res.Verdict, res.Evidence = Skip, why
		return res
	}
	const mib = 1 << 20
	peak := float64(u.PeakRSS) / mib
	what := "peak resident set"
	if h.resourceSource != "" {
		what = "peak memory use"
	}
	res.Evidence = fmt.Sprintf("%s %.1f MiB, limit %g MiB (%s%d samples over %v)",
		what, peak, h.spec.Limits.MemoryMB, h.sourcePrefix(), u.Samples, u.Last.Sub(u.First).Round(100*time.Millisecond))
	res.Verdict = Pass
	if peak > h.spec.Limits.MemoryMB {
		res.Verdict = Fail
	}
	return res
}

// checkCPU compares the module's average CPU use over the run with limits.cpuPercent.
func (h *harness) checkCPU(sampled bool, u usage) Result {
	res := Result{Name: CheckCPU}
	if why := unsampled(sampled, u); why != "" {
		res.Verdict, res.Evidence = Skip, why
		return res
	}
	avg := u.AverageCPUPercent()
	res.Evidence = fmt.Sprintf("average CPU %.1f%% of one core, limit %g%% (%s%v of CPU time over %v)",
		avg, h.spec.Limits.CPUPercent, h.sourcePrefix(), (u.CPU - u.FirstCPU).Round(10*time.Millisecond), u.Last.Sub(u.First).Round(100*time.Millisecond))
	res.Verdict = Pass
	if avg > h.spec.Limits.CPUPercent {
		res.Verdict = Fail
	}
	return res
}

// sourcePrefix names what measured the resources, for the evidence ("docker stats: "),
// or "" for /proc.
func (h *harness) sourcePrefix() string {
	if h.resourceSource == "" {
		return ""
	}
	return h.resourceSource + ": "
}

// unsampled says why the resource checks cannot judge, or "".
func unsampled(sampled bool, u usage) string {
	switch {
	case !sampled:
		return "the runner gives neither the module's process id nor its resource use"
	case u.Samples < minSamples && u.ReadError != "":
		return "the module's resource use could not be read: " + u.ReadError
	case u.Samples < minSamples:
		return fmt.Sprintf("the module ran too briefly to be sampled (%d sample(s))", u.Samples)
	}
	return ""
}
