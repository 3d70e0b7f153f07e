package pluginkit

import "errors"

// dataPlaneOptional reports whether Start may go on without the data plane
// after err made it fail. On Linux the memfd and the socketpair do not fail
// in a healthy system, so a failure stops the start, as it always has.
func dataPlaneOptional(err error) bool { return errors.Is(err, errors.ErrUnsupported) }
