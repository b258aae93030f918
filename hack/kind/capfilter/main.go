// capfilter is an OCI runtime that removes the capabilities this machine cannot grant from a
// container's process, then runs runc with the same arguments. Docker's default runtime on the
// project-owned daemon only, and only where privileged containers fail without it: kind's nodes
// are privileged, and some VMs lack CAP_SYS_RESOURCE in their capability bounding set.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// dropped are removed from every capability set of the process.
var dropped = map[string]bool{"CAP_SYS_RESOURCE": true}

func main() {
	runc := os.Getenv("CAPFILTER_RUNC")
	if runc == "" {
		if found, err := exec.LookPath("runc"); err == nil {
			runc = found
		} else {
			runc = "/usr/sbin/runc"
		}
	}
	args := os.Args[1:]
	if err := filter(args); err != nil {
		fmt.Fprintf(os.Stderr, "capfilter: %v\n", err)
		os.Exit(1)
	}
	if err := syscall.Exec(runc, append([]string{runc}, args...), os.Environ()); err != nil {
		fmt.Fprintf(os.Stderr, "capfilter: exec %s: %v\n", runc, err)
		os.Exit(1)
	}
}

// filter rewrites the process spec of a create/run (the bundle's config.json) or an exec (the
// --process file) in place.
func filter(args []string) error {
	command, bundle, process := "", ".", ""
	for i := 0; i < len(args); i++ {
		switch a := args[i]; a {
		case "--bundle", "-b":
			if i+1 < len(args) {
				bundle = args[i+1]
				i++
			}
		case "--process", "-p":
			if i+1 < len(args) {
				process = args[i+1]
				i++
			}
		case "--root", "--log", "--log-format", "--criu", "--pid-file", "--console-socket", "--preserve-fds":
			i++ // options with a value, before or after the command
		default:
			if len(a) > 0 && a[0] != '-' && command == "" {
				command = a
			}
		}
	}
	switch command {
	case "create", "run":
		return rewrite(filepath.Join(bundle, "config.json"), func(spec map[string]any) map[string]any {
			if p, ok := spec["process"].(map[string]any); ok {
				dropCaps(p)
			}
			return spec
		})
	case "exec":
		if process == "" {
			return nil
		}
		return rewrite(process, func(p map[string]any) map[string]any { dropCaps(p); return p })
	}
	return nil
}

func dropCaps(process map[string]any) {
	caps, ok := process["capabilities"].(map[string]any)
	if !ok {
		return
	}
	for set, list := range caps {
		names, ok := list.([]any)
		if !ok {
			continue
		}
		kept := make([]any, 0, len(names))
		for _, n := range names {
			if s, ok := n.(string); !ok || !dropped[s] {
				kept = append(kept, n)
			}
		}
		caps[set] = kept
	}
}

func rewrite(path string, edit func(map[string]any) map[string]any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	out, err := json.Marshal(edit(doc))
	if err != nil {
		return err
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, info.Mode())
}
