// Command ringnet-install-cni is the DaemonSet's init container: it puts
// ringnet's CNI plugin and network configuration on the node, where the
// container runtime looks for them, before ringnetd starts.
//
//	image                               node (hostPath, mounted under /host)
//	/usr/local/bin/ringnet-cni   --->   /opt/cni/bin/ringnet           0755
//	/etc/ringnet/<conflist>      --->   /etc/cni/net.d/<conflist>      0644
//	  (the ConfigMap's key)
//
// It exists because the image is distroless: there is no shell and no cp.
//
// Each file is written beside its destination under a temporary name,
// synced, and renamed over it, so the runtime never sees half a file: a
// plugin exec'd during an upgrade runs the old binary or the new one, and
// a conflist is whole or absent. The plugin goes first, the conflist last:
// the runtime declares the node's network ready as soon as a valid
// conflist appears, and the plugin it names must be there by then.
//
// Before writing anything it checks the conflist (libcni must parse it,
// its first plugin must be ringnet) and that every plugin it chains after
// ringnet (portmap, bandwidth) is already in the plugin directory: a
// conflist naming a missing plugin makes every pod's ADD fail, which is
// better said once here.
//
// It runs once and exits; nothing here is long-lived or concurrent.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/libcni"
)

// pluginName is the name the runtime execs: the conflist's "type".
const pluginName = "ringnet"

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "ringnet-install-cni:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("ringnet-install-cni", flag.ContinueOnError)
	binDir := fs.String("cni-bin-dir", "/host/opt/cni/bin", "the node's CNI plugin directory, as mounted")
	confDir := fs.String("cni-conf-dir", "/host/etc/cni/net.d", "the node's CNI configuration directory, as mounted")
	plugin := fs.String("plugin", "/usr/local/bin/ringnet-cni", "the CNI plugin binary to install as "+pluginName)
	conflist := fs.String("conflist", "/etc/ringnet/10-ringnet.conflist", "the network configuration to install; its file name is kept")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	conf, err := os.ReadFile(*conflist)
	if err != nil {
		return fmt.Errorf("read the conflist: %w", err)
	}
	if err := check(conf, *conflist, *binDir); err != nil {
		return err
	}
	bin, err := os.ReadFile(*plugin)
	if err != nil {
		return fmt.Errorf("read the plugin: %w", err)
	}
	dst := filepath.Join(*binDir, pluginName)
	if err := install(dst, bin, 0o755); err != nil {
		return err
	}
	fmt.Fprintf(out, "installed %s (%d bytes)\n", dst, len(bin))
	dst = filepath.Join(*confDir, filepath.Base(*conflist))
	if err := install(dst, conf, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(out, "installed %s\n", dst)
	return nil
}

// check says what is wrong with conf (read from path) before anything is
// installed: it must parse, its first plugin must be ringnet, and each
// plugin chained after it must be in binDir.
func check(conf []byte, path, binDir string) error {
	list, err := libcni.ConfListFromBytes(conf)
	if err != nil {
		return fmt.Errorf("conflist %s: %w", path, err)
	}
	if len(list.Plugins) == 0 || list.Plugins[0].Network.Type != pluginName {
		return fmt.Errorf("conflist %s: the first plugin must be of type %q", path, pluginName)
	}
	for _, p := range list.Plugins[1:] {
		t := p.Network.Type
		st, err := os.Stat(filepath.Join(binDir, t))
		if err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("conflist %s chains plugin %q, which is not an executable in the node's CNI plugin directory (%s here): "+
				"install the CNI reference plugins there (containernetworking-plugins), or remove %q from the conflist in the ConfigMap",
				path, t, binDir, t)
		}
	}
	return nil
}

// install writes data to path with mode perm: to a temporary file in the
// same directory, synced, then renamed over path.
func install(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return fmt.Errorf("install %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("install %s: write: %w", path, err)
	}
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("install %s: chmod: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("install %s: sync: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("install %s: close: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("install %s: rename: %w", path, err)
	}
	return nil
}
