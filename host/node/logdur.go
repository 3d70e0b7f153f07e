package node

import (
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
)

// durLogger writes time.Duration values of a line's fields as Go duration
// text ("1.5s", "250ms"), rounded to the millisecond from 1 ms up. hclog
// writes them as %v in text lines but as integer nanoseconds in JSON
// ("in":500000000), which reads as a count of something else; every
// service logs through the node's logger, so this is the one place that
// makes them the same in both formats.
type durLogger struct{ hclog.Logger }

var _ hclog.Logger = durLogger{}

// withDurations wraps l (once).
func withDurations(l hclog.Logger) hclog.Logger {
	if _, ok := l.(durLogger); ok {
		return l
	}
	return durLogger{l}
}

// LogDuration is how a duration is written in a log line: Go duration
// text that time.ParseDuration reads back, in ASCII (below a millisecond
// "0.250ms", not "250µs", which text lines would quote).
func LogDuration(d time.Duration) string {
	if d != 0 && d < time.Millisecond && d > -time.Millisecond {
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64) + "ms"
	}
	return d.Round(time.Millisecond).String()
}

func durArgs(args []any) []any {
	var out []any
	for i := 1; i < len(args); i += 2 {
		if d, ok := args[i].(time.Duration); ok {
			if out == nil {
				out = append([]any(nil), args...)
			}
			out[i] = LogDuration(d)
		}
	}
	if out == nil {
		return args
	}
	return out
}

func (l durLogger) Log(level hclog.Level, msg string, args ...any) {
	l.Logger.Log(level, msg, durArgs(args)...)
}
func (l durLogger) Trace(msg string, args ...any) { l.Logger.Trace(msg, durArgs(args)...) }
func (l durLogger) Debug(msg string, args ...any) { l.Logger.Debug(msg, durArgs(args)...) }
func (l durLogger) Info(msg string, args ...any)  { l.Logger.Info(msg, durArgs(args)...) }
func (l durLogger) Warn(msg string, args ...any)  { l.Logger.Warn(msg, durArgs(args)...) }
func (l durLogger) Error(msg string, args ...any) { l.Logger.Error(msg, durArgs(args)...) }

func (l durLogger) With(args ...any) hclog.Logger {
	return durLogger{l.Logger.With(durArgs(args)...)}
}
func (l durLogger) Named(name string) hclog.Logger      { return durLogger{l.Logger.Named(name)} }
func (l durLogger) ResetNamed(name string) hclog.Logger { return durLogger{l.Logger.ResetNamed(name)} }
