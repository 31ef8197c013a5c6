package conformance

import (
	"time"
)

// Verdict is a check's outcome.
type Verdict string

// Verdicts.
const (
	Pass Verdict = "PASS"
	Fail Verdict = "FAIL"
	Skip Verdict = "SKIP" // the spec declares nothing to check, or an earlier failure left nothing to check
)

// Check names, in report order. Per-endpoint checks append the endpoint's name:
// "input/input1", "output/output1", "method/ping".
const (
	CheckConnect   = "connect"
	CheckIdentity  = "identity"
	CheckInput     = "input"
	CheckOutput    = "output"
	CheckTwin      = "twin"
	CheckMethod    = "method"
	CheckReconnect = "reconnect"
	CheckSigterm   = "sigterm"
	CheckMemory    = "memory"
	CheckCPU       = "cpu"
)

// Result is one check's verdict and its evidence.
type Result struct {
	// Name is the check's name (see the Check constants).
	Name string `json:"name"`
	// Verdict is PASS, FAIL or SKIP.
	Verdict Verdict `json:"verdict"`
	// Evidence says in one line what was observed (or, for SKIP, why nothing was).
	Evidence string `json:"evidence"`
	// Details are further observations, one per line: the hub's log lines about the
	// module, the messages received, the samples.
	Details []string `json:"details,omitempty"`
	// Duration is how long the check took.
	Duration time.Duration `json:"-"`
	// DurationSeconds is Duration for the JSON report.
	DurationSeconds float64 `json:"durationSeconds"`
}

// Report is the outcome of a run.
type Report struct {
	// Module is the module's name (its identity on the harness's edge device).
	Module string `json:"module"`
	// Target says what was run ("executable ./relayer", "image relayer:1.0").
	Target string `json:"target"`
	// Started is when the run started.
	Started time.Time `json:"started"`
	// Duration is how long the run took.
	Duration time.Duration `json:"-"`
	// DurationSeconds is Duration for the JSON report.
	DurationSeconds float64 `json:"durationSeconds"`
	// Passed, Failed and Skipped count the results by verdict.
	Passed  int `json:"passed"`
	Failed  int `json:"failed"`
	Skipped int `json:"skipped"`
	// Results are the checks, in the order of the Check constants.
	Results []Result `json:"checks"`
	// ModuleOutput is the end of what the module wrote to stdout and stderr.
	ModuleOutput string `json:"moduleOutput,omitempty"`
}

// OK reports whether no check failed.
func (r *Report) OK() bool { return r.Failed == 0 }

// Result returns the result of the named check.
func (r *Report) Result(name string) (Result, bool) {
	for _, res := range r.Results {
		if res.Name == name {
			return res, true
		}
	}
	return Result{}, false
}

// FailedChecks returns the names of the failed checks, in report order.
func (r *Report) FailedChecks() []string {
	var out []string
	for _, res := range r.Results {
		if res.Verdict == Fail {
			out = append(out, res.Name)
		}
	}
	return out
}

// add appends a result and counts it.
func (r *Report) add(res Result) {
	res.DurationSeconds = res.Duration.Seconds()
	switch res.Verdict {
	case Pass:
		r.Passed++
	case Fail:
		r.Failed++
	default:
		r.Skipped++
	}
	r.Results = append(r.Results, res)
}
