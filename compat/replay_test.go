package compat

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/portmap"
)

// TestReplayGolden rebuilds the rules of the scenarios of TestCompatView
// (package test/integration) from dnft's state as compat read it there
// (testdata/replay/NAME.json) and compares them with what real iptables
// listed for the reference (NAME.iptables, NAME.ip6tables: -S of raw,
// filter and nat). Regenerate with
//
//	DNFT_COMPAT_TESTDATA=$PWD/compat/testdata/replay go test ./test/integration -run TestCompatView
func TestReplayGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/replay/*.json")
	if err != nil || len(files) < 10 {
		t.Fatalf("replay testdata: %v, %d files", err, len(files))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var in Input
			if err := json.Unmarshal(b, &in); err != nil {
				t.Fatal(err)
			}
			v, err := Build(in, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []Family{IPv4, IPv6} {
				want, err := os.ReadFile(strings.TrimSuffix(file, ".json") + "." + f.Tool())
				if err != nil {
					t.Fatal(err)
				}
				var got bytes.Buffer
				for _, tbl := range []string{TableRaw, TableFilter, TableNAT} {
					fmt.Fprintf(&got, "*%s\n", tbl)
					if err := v.Family(f).Table(tbl).ListRules(&got, "", 0, false, nil); err != nil {
						t.Fatal(err)
					}
				}
				if got.String() != string(want) {
					t.Errorf("%s:\n got:\n%s\nwant:\n%s", f.Tool(), got.String(), want)
				}
			}
			// A view of one table rebuilds that table as the whole view does.
			for _, tbl := range []string{TableRaw, TableFilter, TableNAT} {
				one, err := Build(in, &Kernel{only: map[string]bool{tbl: true}})
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range []Family{IPv4, IPv6} {
					var a, b bytes.Buffer
					if err := v.Family(f).Table(tbl).ListRules(&a, "", 0, false, nil); err != nil {
						t.Fatal(err)
					}
					if err := one.Family(f).Table(tbl).ListRules(&b, "", 0, false, nil); err != nil {
						t.Fatal(err)
					}
					if a.String() != b.String() || v.Family(f).Table(tbl).Present != one.Family(f).Table(tbl).Present {
						t.Errorf("%s -t %s alone:\n got:\n%s\nwant:\n%s", f.Tool(), tbl, b.String(), a.String())
					}
				}
			}
		})
	}
}

func TestBuildErrors(t *testing.T) {
	v, err := Build(Input{}, nil)
	if err != nil || v.IPv4.Table(TableFilter).Present || len(v.IPv4.Table(TableFilter).Chains()) != 3 {
		t.Errorf("uninitialized: %v", err)
	}
	in := Input{Initialized: true, Bindings: []portmap.Published{{Network: "ghost", Seq: 1}}}
	if _, err := Build(in, nil); err == nil {
		t.Error("binding on an unknown network: no error")
	}
	in = Input{Initialized: true, Daemon: chains.DaemonConfig{}, Ingress: []Ingress{{Proto: portmap.TCP, Port: 80, Target: mustAddr("fd00::1")}}}
	if _, err := Build(in, nil); err == nil {
		t.Error("IPv6 ingress without IPv6: no error")
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
