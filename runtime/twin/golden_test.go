package twin

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// sequence is a testdata/sequences/*.json input: writes applied in order to
// a new twin.
type sequence struct {
	Comment string `json:"comment"`
	Steps   []step `json:"steps"`
}

type step struct {
	// Op is reported, desired, replaceDesired, tags or replaceTags.
	Op string    `json:"op"`
	At time.Time `json:"at"`
	// Body is the patch or document; Text, if set, is a raw body instead
	// (for malformed input).
	Body json.RawMessage `json:"body,omitempty"`
	Text string          `json:"text,omitempty"`
}

func (s step) body() []byte {
	if s.Text != "" {
		return []byte(s.Text)
	}
	return s.Body
}

// outcome is what the golden file records per step.
type outcome struct {
	Op     string `json:"op"`
	Result string `json:"result"`
	// Device is the exact DeviceJSON after the step.
	Device string `json:"device"`
	// Notification is the exact desired notification body, for desired patches.
	Notification string `json:"notification,omitempty"`
}

type golden struct {
	Steps []outcome `json:"steps"`
	Final struct {
		Version    int64          `json:"version"`
		Tags       map[string]any `json:"tags"`
		Properties map[string]any `json:"properties"`
	} `json:"final"`
}

// run applies the sequence to a new twin.
func (sq sequence) run(t *testing.T) golden {
	var g golden
	tw := New()
	for i, st := range sq.Steps {
		o := outcome{Op: st.Op}
		patch, err := DecodePatch(st.body())
		var v int64
		if err == nil {
			switch st.Op {
			case "reported":
				v, err = tw.PatchReported(patch, st.At)
			case "desired":
				v, err = tw.PatchDesired(patch, st.At)
				if err == nil {
					o.Notification = string(DesiredNotification(patch, v))
				}
			case "replaceDesired":
				v, err = tw.ReplaceDesired(patch, st.At)
			case "tags":
				err = tw.PatchTags(patch, st.At)
			case "replaceTags":
				err = tw.ReplaceTags(patch, st.At)
			default:
				t.Fatalf("step %d: unknown op %q", i, st.Op)
			}
		}
		switch {
		case err != nil:
			o.Result = "error: " + err.Error()
		case v != 0:
			o.Result = fmt.Sprintf("ok, section version %d, twin version %d", v, tw.Version)
		default:
			o.Result = fmt.Sprintf("ok, twin version %d", tw.Version)
		}
		o.Device = string(tw.DeviceJSON())
		g.Steps = append(g.Steps, o)
	}
	g.Final.Version = tw.Version
	g.Final.Tags = tw.Tags
	g.Final.Properties = tw.Properties()
	return g
}

func loadSequences(t testing.TB) map[string]sequence {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "sequences", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no sequences in testdata/sequences: %v", err)
	}
	out := make(map[string]sequence, len(files))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var sq sequence
		if err := json.Unmarshal(data, &sq); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[f] = sq
	}
	return out
}

func TestGolden_Sequences(t *testing.T) {
	for file, sq := range loadSequences(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			var got bytes.Buffer
			enc := json.NewEncoder(&got)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(sq.run(t)); err != nil {
				t.Fatal(err)
			}
			goldenFile := strings.TrimSuffix(file, ".json") + ".golden"
			if *update {
				if err := os.WriteFile(goldenFile, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(goldenFile)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("%s differs from %s (run go test -update and review the diff)\n got:\n%s", file, goldenFile, got.Bytes())
			}
		})
	}
}
