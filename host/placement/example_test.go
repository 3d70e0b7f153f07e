package placement_test

import (
	"errors"
	"fmt"

	"github.com/tarnfs/tarn/host/placement"
)

// An uploader's use: order the known servers for the file, mark those that
// refused space, add the shares found, plan, then replan when one dies.
func Example() {
	si := []byte("storage index of the file")
	ids := []string{"v1-a", "v1-b", "v1-c", "v1-d", "v1-e"}
	var ring []placement.Server
	for _, id := range placement.Permute(si, ids) {
		ring = append(ring, placement.Server{ID: id, Writable: id != "v1-c"}) // v1-c is full
	}
	existing := map[int][]string{0: {"v1-c"}} // share 0 found on the full server

	pl, err := placement.Plan(placement.Params{K: 3, H: 4, N: 5}, ring, existing)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("happiness", pl.Happiness, "writes", len(pl.Writes))

	victim := pl.ByServer()[0].ID
	moved, err := pl.Fail(victim)
	fmt.Println("moved", len(moved), "error", err)

	_, err = placement.Plan(placement.Params{K: 3, H: 7, N: 10}, ring, nil)
	fmt.Println(err, errors.Is(err, placement.ErrNotHappy))
	// Output:
	// happiness 5 writes 4
	// moved 1 error <nil>
	// upload needs shares on 7 distinct servers (happiness), only 4 usable: 5 answered, 1 full true
}
