package vdrive

// Queued is how many changes wait in d's directory queues (tests).
func Queued(d *Drive) int {
	d.queues.mu.Lock()
	defer d.queues.mu.Unlock()
	n := 0
	for _, q := range d.queues.m {
		n += len(q.waiting)
	}
	return n
}
