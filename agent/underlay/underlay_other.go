//go:build !linux

package underlay

import (
	"errors"
	"log/slog"
)

// Open fails: the neighbour table is read through Linux's netlink.
func Open(log *slog.Logger) (*Neighbors, error) {
	return nil, errors.New("underlay: needs Linux (netlink)")
}
