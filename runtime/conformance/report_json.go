package conformance

import (
	"encoding/json"
	"io"
)

// WriteJSON writes the report as indented JSON: the Report and Result fields under their
// json names, durations in seconds.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
