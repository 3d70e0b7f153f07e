package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// Figure is one measured number and, when it has one, the ceiling it is
// read against.
type Figure struct {
	// Key is the figure's stable name, for comparing runs ("ceiling.aes.1core").
	Key   string  `json:"key"`
	Name  string  `json:"name"` // what a person reads in the table
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	// Ceiling names the figure this one is compared to (its Key), and
	// CeilingValue is its value in the same unit; both empty when there is
	// nothing to compare to.
	Ceiling      string  `json:"ceiling,omitempty"`
	CeilingValue float64 `json:"ceiling_value,omitempty"`
	// Ratio is Value / CeilingValue, 0 when there is no ceiling.
	Ratio float64 `json:"ratio,omitempty"`
	Note  string  `json:"note,omitempty"`
}

// Report is one run of the harness: the table plus what a reader needs to
// judge it (when, where, how loaded the machine was).
type Report struct {
	Started    time.Time `json:"started"`
	Took       float64   `json:"took_seconds"`
	Host       string    `json:"host"`
	GoVersion  string    `json:"go_version"`
	NumCPU     int       `json:"num_cpu"`
	LoadBefore string    `json:"load_before"` // /proc/loadavg at the start
	LoadAfter  string    `json:"load_after"`
	Tarn       string    `json:"tarn,omitempty"` // `tarn version` of the binary used
	Hash       string    `json:"hash"`           // the hash tarn's data path uses
	Figures    []Figure  `json:"figures"`
	Skipped    []string  `json:"skipped,omitempty"` // parts not run, and why
	Notes      []string  `json:"notes,omitempty"`
}

// add appends a figure.
func (r *Report) add(f Figure) { r.Figures = append(r.Figures, f) }

// find returns the figure with key, if measured.
func (r *Report) find(key string) (Figure, bool) {
	for _, f := range r.Figures {
		if f.Key == key {
			return f, true
		}
	}
	return Figure{}, false
}

// compare sets f's ceiling to the figure with key ceil, if that was measured.
func (r *Report) compare(f Figure, ceil string) Figure {
	c, ok := r.find(ceil)
	if !ok || c.Value <= 0 || c.Unit != f.Unit {
		return f
	}
	f.Ceiling, f.CeilingValue, f.Ratio = c.Key, c.Value, f.Value/c.Value
	return f
}

// pipelineCeiling is the rate of a pipeline whose stages run one after the
// other on the same bytes: its time per byte is the sum of theirs.
func pipelineCeiling(rates ...float64) float64 {
	var perByte float64
	for _, r := range rates {
		if r <= 0 || math.IsNaN(r) || math.IsInf(r, 0) {
			return 0
		}
		perByte += 1 / r
	}
	if perByte == 0 {
		return 0
	}
	return 1 / perByte
}

// WriteTable prints the figures, one a line, then the notes. With a
// baseline (an earlier run's figures), two more columns show the earlier
// value and this one's ratio to it.
func (r *Report) WriteTable(w io.Writer, baseline ...Figure) error {
	was := map[string]float64{}
	for _, f := range baseline {
		was[f.Key] = f.Value
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	head := "figure\tvalue\tunit\tceiling\tratio\t"
	if len(baseline) > 0 {
		head += "before\tx before\t"
	}
	fmt.Fprintln(tw, head)
	for _, f := range r.Figures {
		ceil, ratio := "-", "-"
		if f.Ceiling != "" {
			ceil = f.Ceiling
			ratio = fmt.Sprintf("%.3f", f.Ratio)
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t", f.Key, formatValue(f.Value), f.Unit, ceil, ratio)
		if len(baseline) > 0 {
			if v, ok := was[f.Key]; ok && v > 0 {
				line += fmt.Sprintf("%s\t%.2f\t", formatValue(v), f.Value/v)
			} else {
				line += "-\t-\t"
			}
		}
		fmt.Fprintln(tw, line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nhash of tarn's data path: %s\n", r.Hash)
	fmt.Fprintf(w, "machine: %s, %d CPUs, %s; load average before %s, after %s\n",
		r.Host, r.NumCPU, r.GoVersion, r.LoadBefore, r.LoadAfter)
	if r.Tarn != "" {
		fmt.Fprintf(w, "binary: %s\n", r.Tarn)
	}
	for _, f := range r.Figures {
		if f.Note != "" {
			fmt.Fprintf(w, "  %s: %s\n", f.Key, f.Note)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(w, "skipped: %s\n", s)
	}
	fmt.Fprintf(w, "took %.0f s\n", r.Took)
	return nil
}

// formatValue keeps three significant figures or whole numbers, whichever
// is longer, so that the table lines up and nothing pretends to precision.
func formatValue(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// WriteJSON writes the report to path, creating its folder, through a
// temporary file so that a reader never sees half a report.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	b = append(b, '\n')
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write results %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-")
	if err != nil {
		return fmt.Errorf("write results %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write results %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write results %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write results %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write results %s: %w", path, err)
	}
	return nil
}

// readBaseline reads the figures of an earlier run's JSON.
func readBaseline(path string) ([]Figure, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	var old Report
	if err := json.Unmarshal(b, &old); err != nil {
		return nil, fmt.Errorf("baseline %s: not a tarnbench results file: %w", path, err)
	}
	if len(old.Figures) == 0 {
		return nil, fmt.Errorf("baseline %s: no figures in it", path)
	}
	return old.Figures, nil
}

// loadAvg returns the first three fields of /proc/loadavg, or "unknown".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
