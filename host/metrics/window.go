package metrics

import (
	"sync"
	"time"
)

// Window turns counters that only grow into rates over the last minute:
// Sample records their values now and then (every few seconds), Rates
// divides what they grew within Span by the time it took. It keeps no
// more than Span/step samples.
type Window struct {
	Span time.Duration // default one minute

	mu      sync.Mutex
	samples []sample
}

type sample struct {
	at time.Time
	v  []float64
}

// Sample records the counters' values at t. Values must keep their order
// between calls.
func (w *Window) Sample(t time.Time, values ...float64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	span := w.span()
	w.samples = append(w.samples, sample{at: t, v: append([]float64(nil), values...)})
	// Keep one sample older than the span: rates cover the whole span.
	i := 0
	for i+1 < len(w.samples) && t.Sub(w.samples[i+1].at) >= span {
		i++
	}
	w.samples = w.samples[i:]
}

func (w *Window) span() time.Duration {
	if w.Span <= 0 {
		return time.Minute
	}
	return w.Span
}

// Rates returns each counter's growth per second over the samples of the
// last span, and the seconds they cover (0 and nil with fewer than two
// samples). A counter that went down (a restart) counts from its new
// value.
func (w *Window) Rates() (perSecond []float64, over float64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.samples) < 2 {
		return nil, 0
	}
	first, last := w.samples[0], w.samples[len(w.samples)-1]
	secs := last.at.Sub(first.at).Seconds()
	if secs <= 0 {
		return nil, 0
	}
	out := make([]float64, len(last.v))
	for i := range last.v {
		d := last.v[i]
		if i < len(first.v) && first.v[i] <= last.v[i] {
			d -= first.v[i]
		}
		out[i] = d / secs
	}
	return out, secs
}
