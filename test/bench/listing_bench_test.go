package bench

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dnft/dnft/compat"
	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/test/harness"
)

// reader is one way of reading back (or rebuilding) a Batch-binding state:
// a label for the results, the backend that programs the state, and the
// timed operation.
type reader struct {
	label, backend, note string
	op                   func(ctx context.Context, ns *harness.NS, be Backend) error
}

// exe returns a reader operation that runs a program in the namespace.
func exe(name string, args ...string) func(context.Context, *harness.NS, Backend) error {
	return func(ctx context.Context, ns *harness.NS, _ Backend) error {
		_, err := execIn(ctx, ns, "", name, args)
		return err
	}
}

// BenchmarkListing measures a full readback of Batch published bindings:
// dnft's nft.Conn.ReadTable (a long-lived socket, as the library holds
// it) and Firewall.Ports, against iptables-save of both variants and
// `nft list table` of the nft baseline.
func BenchmarkListing(b *testing.B) {
	s := scale(b)
	var conn *nft.Conn
	readers := []reader{
		{"dnft", "dnft", "nft.Conn.ReadTable (all chains, rules, sets, elements)", func(ctx context.Context, ns *harness.NS, _ Backend) error {
			_, _, err := conn.ReadTable(ctx, nft.IPv4)
			return err
		}},
		{"dnft Ports", "dnft", "Firewall.Ports: read back and decode every binding", func(ctx context.Context, _ *harness.NS, be Backend) error {
			_, err := be.(*dnftBackend).fw.Ports(ctx)
			return err
		}},
		{"iptables-nft", "restore-nft", "iptables-nft-save", exe("iptables-nft-save")},
		{"iptables-legacy", "restore-legacy", "iptables-legacy-save", exe("iptables-legacy-save")},
		{"nft-rules", "nft-rules", "nft list table ip docker", exe("nft", "list", "table", "ip", "docker")},
	}
	for _, rd := range readers {
		b.Run(fmt.Sprintf("bindings=%d/%s", s.Batch, rd.label), func(b *testing.B) {
			cell(b, func(b *testing.B) []Result {
				be, ns := setup(b, rd.backend, 1, s.Batch)
				if rd.backend == "dnft" {
					var err error
					if conn, err = nft.Open(context.Background(), ns.Path()); err != nil {
						b.Fatal(err)
					}
					defer conn.Close()
				}
				return []Result{measure(b, s, Result{Workload: "listing", Backend: rd.label, Param: "bindings", Size: s.Batch, Note: rd.note},
					func(ctx context.Context) error { return rd.op(ctx, ns, be) })}
			})
		})
	}
}

// BenchmarkIPTablesView measures the compat view `iptables -L -n -v` of the
// filter and nat tables at Batch bindings: dnft's (package compat: read
// back from the kernel with compat.Read, rendered with compat.Run, in
// process, once per table as two commands would) against real iptables.
func BenchmarkIPTablesView(b *testing.B) {
	s := scale(b)
	tables := []string{"filter", "nat"}
	view := func(bin string) func(context.Context, *harness.NS, Backend) error {
		return func(ctx context.Context, ns *harness.NS, _ Backend) error {
			for _, t := range tables {
				if _, err := execIn(ctx, ns, "", bin, []string{"-t", t, "-L", "-n", "-v"}); err != nil {
					return err
				}
			}
			return nil
		}
	}
	names, err := compat.SystemNames(nil)
	if err != nil {
		b.Fatal(err)
	}
	var conn *nft.Conn
	readers := []reader{
		{"dnft", "dnft", "compat.Read + compat.Run -t filter|nat -L -n -v, in process", func(ctx context.Context, _ *harness.NS, _ Backend) error {
			for _, t := range tables {
				v, err := compat.Read(ctx, conn)
				if err != nil {
					return err
				}
				var out, errOut bytes.Buffer
				if code := compat.Run(v.IPv4, compat.NFT, names, []string{"-t", t, "-L", "-n", "-v"}, &out, &errOut); code != 0 {
					return fmt.Errorf("compat: iptables -t %s -L -n -v: exit %d: %s", t, code, errOut.String())
				}
				if !strings.Contains(out.String(), "Chain DOCKER") {
					return fmt.Errorf("compat: iptables -t %s -L -n -v has no DOCKER chain:\n%s", t, clip(out.String()))
				}
			}
			return nil
		}},
		{"iptables-nft", "restore-nft", "iptables-nft -t filter|nat -L -n -v", view("iptables-nft")},
		{"iptables-legacy", "restore-legacy", "iptables-legacy -t filter|nat -L -n -v", view("iptables-legacy")},
	}
	for _, rd := range readers {
		b.Run(fmt.Sprintf("bindings=%d/%s", s.Batch, rd.label), func(b *testing.B) {
			cell(b, func(b *testing.B) []Result {
				r := Result{Workload: "iptables-view", Backend: rd.label, Param: "bindings", Size: s.Batch, Note: rd.note}
				be, ns := setup(b, rd.backend, 1, s.Batch)
				if rd.backend == "dnft" {
					var err error
					if conn, err = nft.Open(context.Background(), ns.Path()); err != nil {
						b.Fatal(err)
					}
					defer conn.Close()
				}
				if err := rd.op(context.Background(), ns, be); err != nil {
					b.Fatal(err)
				}
				return []Result{measure(b, s, r, func(ctx context.Context) error { return rd.op(ctx, ns, be) })}
			})
		})
	}
}

// BenchmarkIPTablesCLI measures the command an operator types at Batch
// bindings, `iptables -L -n -v` (the filter table) as a process: `dnft
// iptables -L -n -v` (process start, netlink read-back, view rebuilt and
// printed) against iptables-nft and iptables-legacy on the same rules.
func BenchmarkIPTablesCLI(b *testing.B) {
	s := scale(b)
	dnftBin := filepath.Join(binaries(b), "dnft")
	readers := []reader{
		{"dnft", "dnft", "dnft iptables -L -n -v (process)", func(ctx context.Context, ns *harness.NS, _ Backend) error {
			p, err := execIn(ctx, ns, "", dnftBin, []string{"iptables", "-L", "-n", "-v"})
			if err == nil && !strings.Contains(p.Stdout, "Chain DOCKER") {
				err = fmt.Errorf("dnft iptables -L -n -v has no DOCKER chain:\n%s", clip(p.Stdout))
			}
			return err
		}},
		{"iptables-nft", "restore-nft", "iptables-nft -L -n -v", exe("iptables-nft", "-L", "-n", "-v")},
		{"iptables-legacy", "restore-legacy", "iptables-legacy -L -n -v", exe("iptables-legacy", "-L", "-n", "-v")},
	}
	for _, rd := range readers {
		b.Run(fmt.Sprintf("bindings=%d/%s", s.Batch, rd.label), func(b *testing.B) {
			cell(b, func(b *testing.B) []Result {
				r := Result{Workload: "iptables-cli", Backend: rd.label, Param: "bindings", Size: s.Batch, Note: rd.note}
				be, ns := setup(b, rd.backend, 1, s.Batch)
				if err := rd.op(context.Background(), ns, be); err != nil {
					b.Fatal(err)
				}
				return []Result{measure(b, s, r, func(ctx context.Context) error { return rd.op(ctx, ns, be) })}
			})
		})
	}
}

// BenchmarkRestore measures loading a saved Batch-binding state into a
// fresh namespace: iptables-restore of iptables-save output, `nft -f` of
// `nft list ruleset` output, `dnft restore` of `dnft save` output (when
// the CLI has them), and dnft rebuilding the state through the library
// (init, network, publications in batches), as a runtime does on start.
func BenchmarkRestore(b *testing.B) {
	s := scale(b)
	dnftBin := filepath.Join(binaries(b), "dnft")
	type restorer struct {
		label, backend, note string
		save                 func(ctx context.Context, ns *harness.NS) (string, error)
		load                 func(ctx context.Context, ns *harness.NS, saved string) error
	}
	out := func(name string, args ...string) func(context.Context, *harness.NS) (string, error) {
		return func(ctx context.Context, ns *harness.NS) (string, error) {
			p, err := execIn(ctx, ns, "", name, args)
			return p.Stdout, err
		}
	}
	in := func(name string, args ...string) func(context.Context, *harness.NS, string) error {
		return func(ctx context.Context, ns *harness.NS, saved string) error {
			_, err := execIn(ctx, ns, saved, name, args)
			return err
		}
	}
	restorers := []restorer{
		{"dnft", "dnft", "dnft save | dnft restore",
			func(ctx context.Context, ns *harness.NS) (string, error) {
				return out(dnftBin, "--netns", ns.Path(), "save")(ctx, ns)
			},
			func(ctx context.Context, ns *harness.NS, saved string) error {
				return in(dnftBin, "--netns", ns.Path(), "restore")(ctx, ns, saved)
			}},
		{"dnft replay", "dnft", "library: init, network, Publish in batches of 500",
			func(context.Context, *harness.NS) (string, error) { return "", nil },
			func(ctx context.Context, ns *harness.NS, _ string) error {
				be, err := NewBackend(ctx, "dnft", ns)
				if err != nil {
					return err
				}
				defer be.Close()
				if err := be.Init(ctx); err != nil {
					return err
				}
				if err := be.CreateNetwork(ctx, 0); err != nil {
					return err
				}
				return be.PrefillBindings(ctx, bindings(0, s.Batch))
			}},
		{"iptables-nft", "restore-nft", "iptables-nft-save | iptables-nft-restore", out("iptables-nft-save"), in("iptables-nft-restore", "-w")},
		{"iptables-legacy", "restore-legacy", "iptables-legacy-save | iptables-legacy-restore", out("iptables-legacy-save"), in("iptables-legacy-restore", "-w")},
		{"nft-rules", "nft-rules", "nft list ruleset | nft -f", out("nft", "list", "ruleset"), in("nft", "-f", "-")},
	}
	for _, rs := range restorers {
		b.Run(fmt.Sprintf("bindings=%d/%s", s.Batch, rs.label), func(b *testing.B) {
			cell(b, func(b *testing.B) []Result {
				r := Result{Workload: "restore", Backend: rs.label, Param: "bindings", Size: s.Batch, Note: rs.note}
				ctx := context.Background()
				if rs.label == "dnft" && !(hasCommand(b, dnftBin, "save") && hasCommand(b, dnftBin, "restore")) {
					b.Fatal("the dnft CLI has no save/restore commands")
				}
				_, src := setup(b, rs.backend, 1, s.Batch)
				saved, err := rs.save(ctx, src)
				if err != nil {
					b.Fatal(err)
				}
				var ds []time.Duration
				o, err := s.Repeat(ctx, func(ctx context.Context, _ int) error {
					ns, del, err := NewNS(ctx)
					if err != nil {
						return err
					}
					defer del()
					if err := ns.SetSysctl("net.ipv4.ip_forward", "1"); err != nil {
						return err
					}
					return timed(&ds, func() error { return rs.load(ctx, ns, saved) })
				})
				if err != nil {
					b.Fatal(err)
				}
				return []Result{durations(r, ds, o)}
			})
		})
	}
}

// measure repeats op within the scale's budget and returns r with the
// durations.
func measure(b *testing.B, s Scale, r Result, op func(ctx context.Context) error) Result {
	b.Helper()
	var ds []time.Duration
	o, err := s.Repeat(context.Background(), func(ctx context.Context, _ int) error {
		return timed(&ds, func() error { return op(ctx) })
	})
	if err != nil {
		b.Fatal(err)
	}
	return durations(r, ds, o)
}
