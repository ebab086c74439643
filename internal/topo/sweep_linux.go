package topo

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Sweep removes what topologies with this prefix left behind when their
// process died without Close: their namespaces (killing what runs inside),
// root links and lock files. A topology is stale when its lock file is
// missing or nobody holds its flock; a live one, in this process or
// another, is left alone. Only names of the exact form New makes, with the
// stem "rnt" and this prefix, are ever touched. It tries everything and
// returns the first error.
func Sweep(prefix string) error {
	if !prefixRE.MatchString(prefix) {
		return fmt.Errorf("sweep prefix %q: want at most %d of [a-z0-9]", prefix, maxPrefix)
	}
	id := `(` + stem + regexp.QuoteMeta(prefix) + `[a-z0-9]{` + fmt.Sprint(idRandLen) + `})`
	netnsRE := regexp.MustCompile(`^` + id + `-[a-z0-9][a-z0-9_.-]*$`)
	linkRE := regexp.MustCompile(`^` + id + `-(br|[0-9]{1,3})$`)
	lockRE := regexp.MustCompile(`^` + id + `\.lock$`)

	type leftovers struct{ netnses, links []string }
	found := map[string]*leftovers{}
	get := func(id string) *leftovers {
		if found[id] == nil {
			found[id] = &leftovers{}
		}
		return found[id]
	}
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}

	ents, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		keep(fmt.Errorf("list netns: %w", err))
	}
	for _, e := range ents {
		if m := netnsRE.FindStringSubmatch(e.Name()); m != nil {
			l := get(m[1])
			l.netnses = append(l.netnses, e.Name())
		}
	}
	root, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer root.Close()
	links, err := root.LinkList()
	if err != nil {
		keep(fmt.Errorf("list links: %w", err))
	}
	for _, ln := range links {
		if m := linkRE.FindStringSubmatch(ln.Attrs().Name); m != nil {
			l := get(m[1])
			l.links = append(l.links, ln.Attrs().Name)
		}
	}
	locks, err := os.ReadDir(lockDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		keep(fmt.Errorf("list locks: %w", err))
	}
	for _, e := range locks {
		if m := lockRE.FindStringSubmatch(e.Name()); m != nil {
			get(m[1])
		}
	}

	for id, l := range found {
		lock, stale, err := lockStale(id)
		if err != nil {
			keep(err)
			continue
		}
		if !stale {
			continue
		}
		// Sorted, a pod ("<id>-<node>-<pod>") comes after its node, and
		// removeAll goes backwards.
		sort.Strings(l.netnses)
		sort.Strings(l.links)
		keep(removeAll(root, l.netnses, l.links))
		if lock != nil {
			if err := os.Remove(lock.Name()); err != nil && !errors.Is(err, os.ErrNotExist) {
				keep(fmt.Errorf("remove lock %s: %w", id, err))
			}
			lock.Close()
		}
	}
	return first
}

// lockStale reports whether the topology id is stale: no lock file, or one
// nobody holds. When the file exists it is returned locked, for the caller
// to remove and close.
func lockStale(id string) (*os.File, bool, error) {
	path := lockPath(id)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("open lock %s: %w", id, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, false, nil // alive
		}
		return nil, false, fmt.Errorf("flock %s: %w", id, err)
	}
	if !samePath(f, path) { // replaced since we opened it: leave it
		f.Close()
		return nil, false, nil
	}
	return f, true, nil
}
