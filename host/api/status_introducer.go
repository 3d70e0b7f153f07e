package api

import "time"

// IntroducerLink is a node's link to one of its introducers, in
// Status.IntroducerLinks: a client's subscription (role "subscriber") and
// a storage server's announcements (role "publisher"), one per introducer
// of the profile. A client that knows no server because its introducer is
// unreachable, or refuses it, says so here rather than only "0 known".
type IntroducerLink struct {
	URL  string `json:"url"`
	Role string `json:"role"`
	// Connected: a subscriber holds the introducer's list; a publisher's
	// announcement was taken and its session goes on.
	Connected bool `json:"connected"`
	// Since is when the link came into its present state (connected, or
	// not connected: since the node started or the link was lost).
	Since time.Time `json:"since"`
	// LastError is why the last session ended or could not start.
	LastError string `json:"last_error,omitempty"`
	// Refused: the introducer refused this node (another grid secret or
	// grid name); retried once a minute, mended only by the profile.
	Refused bool `json:"refused,omitempty"`
}
