package checker

import (
	"errors"
	"io"
	"slices"

	"github.com/tarnfs/tarn/host/chk"
	"github.com/tarnfs/tarn/sdk/storage"
)

// Options say how deep a check goes.
type Options struct {
	// Verify fetches and checks every block of every share (not only asks
	// which shares exist).
	Verify bool
	// Repair rebuilds missing or corrupt shares and places them to restore
	// happiness when the file is not healthy. It implies Verify: only
	// shares known good are used and counted.
	Repair bool
	// AddLease renews this client's lease on every server holding a share.
	AddLease bool
}

// Outcome is the verdict on one file.
type Outcome string

// Outcomes.
const (
	// Healthy: every share is present (and, verified, good) and the shares
	// are spread over at least H servers.
	Healthy Outcome = "healthy"
	// Unhealthy: readable (K good shares) but missing shares, holding
	// corrupt ones or spread too thin; a repair was not asked for or did
	// not restore health.
	Unhealthy Outcome = "unhealthy"
	// Repaired: was unhealthy, and the repair restored health.
	Repaired Outcome = "repaired"
	// Unrecoverable: fewer than K good shares found; the file cannot be
	// read or repaired now (servers may be down).
	Unrecoverable Outcome = "unrecoverable"
)

// Share states in a ShareReport.
const (
	ShareGood       = "good"       // verified (or, without verify, listed)
	ShareCorrupt    = "corrupt"    // failed a check: wrong bytes
	ShareUnreadable = "unreadable" // listed, but reading it failed
)

// ShareReport is one share on one server.
type ShareReport struct {
	Share  int    `json:"share"`
	Server string `json:"server"`
	State  string `json:"state"`
	// Problem says what failed, for corrupt and unreadable shares.
	Problem string `json:"problem,omitempty"`
	// Removed: told of the corruption (with the verify cap), the server
	// checked the share itself and removed it.
	Removed bool `json:"removed_by_server,omitempty"`
}

// RepairReport is what a repair did.
type RepairReport struct {
	// Rebuilt lists share numbers rebuilt from K good shares; Copied
	// those copied from a good copy to another server (for happiness).
	Rebuilt []int `json:"rebuilt,omitempty"`
	Copied  []int `json:"copied,omitempty"`
	// Placed are the shares written, with the server each went to.
	Placed []ShareReport `json:"placed,omitempty"`
	// LeftOutFull are the servers left out of the targets because they
	// announced too little free space for a share (not asked; the others
	// were enough for happiness).
	LeftOutFull []string `json:"servers_left_out_full,omitempty"`
	// Errors describe writes that failed.
	Errors []string `json:"errors,omitempty"`
	// HappinessAfter and GoodAfter describe the file after the repair.
	HappinessAfter int `json:"happiness_after"`
	GoodAfter      int `json:"good_after"`
}

// Report is what Check found about one file.
type Report struct {
	// Path is the file's path in a deep check ("" for a single check).
	Path string `json:"path,omitempty"`
	// Kind is the cap kind ("chk", "lit", "mut", "dir", ...); Cap is the
	// verify cap (the read cap of a LIT file, which has none).
	Kind         string `json:"kind"`
	Cap          string `json:"verify_cap"`
	StorageIndex string `json:"storage_index,omitempty"`
	// Needed is K, Total N.
	Needed int `json:"shares_needed"`
	Total  int `json:"shares_total"`
	// Found counts distinct share numbers found on any server; Good those
	// with a good copy (verified, or listed when not verifying).
	Found int `json:"shares_found"`
	Good  int `json:"shares_good"`
	// Missing lists share numbers with no good copy anywhere.
	Missing []int `json:"shares_missing,omitempty"`
	// Corrupt lists every corrupt or unreadable share and its server.
	Corrupt []ShareReport `json:"shares_corrupt,omitempty"`
	// Shares lists every share found, by share number then server.
	Shares []ShareReport `json:"shares,omitempty"`
	// Servers counts servers holding a good share; Happiness is the
	// servers-of-happiness of the good shares; HappinessWanted the H a
	// healthy file has.
	Servers         int `json:"servers"`
	Happiness       int `json:"happiness"`
	HappinessWanted int `json:"happiness_wanted"`
	// Unreachable lists servers that did not answer.
	Unreachable []string `json:"servers_unreachable,omitempty"`
	// Verified is true when every share was read and checked.
	Verified bool `json:"verified"`
	// LeasesRenewed counts servers whose lease was renewed (AddLease).
	LeasesRenewed int `json:"leases_renewed,omitempty"`
	// Version is the sequence number of a mutable file's current version.
	Version uint64 `json:"version,omitempty"`
	// Problems are other findings, one line each.
	Problems []string `json:"problems,omitempty"`
	// Repair is what a repair did (nil when none was made).
	Repair  *RepairReport `json:"repair,omitempty"`
	Outcome Outcome       `json:"outcome"`
	// Children are the reports of the directory's chunks (a directory
	// read with a read cap keeps large buckets in immutable chunks).
	Children []*Report `json:"chunks,omitempty"`
}

// Healthy reports whether the outcome is healthy or repaired.
func (r *Report) Healthy() bool { return r.Outcome == Healthy || r.Outcome == Repaired }

func (r *Report) sortShares() {
	less := func(a, b ShareReport) int {
		if a.Share != b.Share {
			return a.Share - b.Share
		}
		if a.Server < b.Server {
			return -1
		}
		if a.Server > b.Server {
			return 1
		}
		return 0
	}
	slices.SortFunc(r.Shares, less)
	slices.SortFunc(r.Corrupt, less)
	slices.Sort(r.Unreachable)
}

// clearAnswer: the server answered clearly (the connection is fine).
func clearAnswer(err error) bool {
	return errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrNoSpace) ||
		errors.Is(err, storage.ErrExists) || errors.Is(err, storage.ErrRange) ||
		errors.Is(err, storage.ErrConflict) || errors.Is(err, chk.ErrCorrupt) ||
		errors.Is(err, io.ErrUnexpectedEOF) // a read past a share's end
}
