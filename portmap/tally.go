package portmap

import (
	"context"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/nft"
)

// Tally counts published bindings the two ways queuing a publication
// asks about the bindings before it (see [Publish]): by container port
// of a network, and by proto and host port on a specific host address.
// It stands in for an [Index] where bindings are only ever published, as
// when the tables a whole state programs are built: two counters per
// binding where an Index keeps every binding three times (50 MB at
// 65,000 bindings). Bindings must be normalised and not published twice.
type Tally struct {
	targets map[targetKey]int
	hosts   map[claimKey]int
}

// NewTally returns a Tally of no bindings.
func NewTally() *Tally {
	return &Tally{targets: map[targetKey]int{}, hosts: map[claimKey]int{}}
}

// Publish is [Publish] against the bindings counted (which it does not
// count: call [Tally.Add] after it).
func (t *Tally) Publish(tx *nft.Tx, d chains.DaemonConfig, n chains.Network, bs []Binding, seq int64) {
	_ = queuePublish(context.Background(), t, tx, d, n, bs, seq) // a tally never fails
}

// Add counts bindings published on network; seq is not kept (it is
// there so that a Tally is added to as an [Index] is).
func (t *Tally) Add(network string, bs []Binding, _ int64) {
	for _, b := range bs {
		t.targets[targetOf(network, b)]++
		if !b.HostIP.IsUnspecified() {
			t.hosts[claimOf(b)]++
		}
	}
}

func (t *Tally) refs(_ context.Context, network string, b Binding) (int, error) {
	return t.targets[targetOf(network, b)], nil
}

func (t *Tally) hostRefs(_ context.Context, b Binding) (int, error) {
	return t.hosts[claimOf(b)], nil
}
