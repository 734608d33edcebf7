package bridge

import "sync"

// Bounds of what producers can grow: every distinct routing key of an
// unroutable message would otherwise add a metric series and a map entry
// for as long as the bridge runs.
const (
	// MaxRoutingKeyLabels is how many distinct routing keys
	// messagekit_bridge_unroutable_total labels; later ones are counted
	// under OtherLabel.
	MaxRoutingKeyLabels = 100
	// OtherLabel is the label value routing keys beyond the cap fold into.
	OtherLabel = "other"
	// maxUnroutableLogKeys bounds the routing keys whose last log time is
	// kept; beyond it, expired entries are dropped and new keys share one.
	maxUnroutableLogKeys = 1000
)

// labelCap passes the first max distinct values through and folds the
// rest into OtherLabel. It is safe for concurrent use.
type labelCap struct {
	mu   sync.Mutex
	max  int
	seen map[string]struct{}
}

func newLabelCap(max int) *labelCap {
	return &labelCap{max: max, seen: make(map[string]struct{}, max)}
}

// value returns v, or OtherLabel once max other values were seen.
func (c *labelCap) value(v string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.seen[v]; ok {
		return v
	}
	if len(c.seen) >= c.max {
		return OtherLabel
	}
	c.seen[v] = struct{}{}
	return v
}
