package compat

import (
	"io"
	"strings"
	"testing"
	"time"
)

// fuzzSeeds are renderer inputs for the seed corpus: golden -S -v output,
// extension shapes and malformed lines.
func fuzzSeeds(t testing.TB) []string {
	seeds := []string{
		"-P INPUT ACCEPT -c 1 2\n-N X\n-A INPUT -c 3 4 -j X\n-A X -p tcp -m tcp --dport 80:90 -j RETURN\n",
		"*nat\n:PREROUTING ACCEPT [18446744073709551615:1]\n[1:2] -A PREROUTING -m addrtype ! --dst-type LOCAL -j DNAT --to-destination [::1]:80\nCOMMIT\n",
		"-A INPUT -p icmp -m icmp --icmp-type 300 -j LOG --log-level 99 --log-prefix \"\\\"\"\n",
		"-A INPUT -m conntrack ! --ctstate BOGUS --ctorigdst nothing --ctrepldst ::1 -j MARK --set-xmark zz\n",
		"-A INPUT -p tcp -m multiport --dports 1:,x,:2 -m tcp --tcp-flags BOGUS,ALL NONE\n",
		"-A INPUT -m mark --mark 0xffffffffff -m comment --comment -j\n",
		"-A INPUT -d 1.2.3.4/255.0.255.0 ! -s 0.0.0.0/0 -f -g INPUT\n",
		"-A INPUT -m unknown --a --b c -j UNKNOWN --d e\n[1:]\n:X\n*\n-A\n-P INPUT\n",
	}
	files := golden(t)
	for _, scen := range []string{"docker", "extras", "counters"} {
		for _, f := range []string{"iptables_-t_filter_-S_-v.txt", "iptables_-t_nat_-S_-v.txt", "ip6tables_-t_filter_-S_-v.txt"} {
			seeds = append(seeds, files["legacy/"+scen+"/"+f])
		}
	}
	return seeds
}

// FuzzRender parses arbitrary text as -S / iptables-save input (both
// families) and renders every listing of what it accepted; nothing may
// panic. The seed corpus runs as a normal test.
func FuzzRender(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	names := &Names{DNS: unreachableDNS{}}
	_ = names.ReadNSSwitch(strings.NewReader("hosts: files dns\n"))
	_ = names.ReadHosts(strings.NewReader("127.0.0.1 localhost\n::1 localhost\n"))
	_ = names.ReadServices(strings.NewReader("http 80/tcp\n"))
	_ = names.ReadNetworks(strings.NewReader("loopback 127.0.0.0\n"))
	f.Fuzz(func(t *testing.T, text string) {
		for _, fam := range []Family{IPv4, IPv6} {
			rs := NewRuleset(fam)
			// Parse lines one by one so that one bad line does not hide
			// the others.
			for _, line := range strings.Split(text, "\n") {
				_ = rs.Parse(TableFilter, line, names)
			}
			renderAll(t, rs, names)
		}
	})
}

// renderAll renders every listing of a ruleset.
func renderAll(t *testing.T, rs *Ruleset, names *Names) {
	t.Helper()
	for _, name := range TableNames {
		tb := rs.Table(name)
		for bits := 0; bits < 16; bits++ {
			opt := ListOptions{Numeric: bits&1 != 0, Verbose: bits&2 != 0, Exact: bits&4 != 0, LineNumbers: bits&8 != 0}
			if err := tb.List(io.Discard, opt, names); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range tb.Chains() {
			_ = tb.List(io.Discard, ListOptions{Chain: c.Name, Rule: 1, Verbose: true}, names)
			_ = tb.ListRules(io.Discard, c.Name, 1, true, names)
		}
		if err := tb.ListRules(io.Discard, "", 0, true, names); err != nil {
			t.Fatal(err)
		}
	}
	if err := rs.Save(io.Discard, SaveOptions{Counters: true, Names: names}); err != nil {
		t.Fatal(err)
	}
}

// FuzzArgs runs arbitrary iptables and iptables-save command lines
// (space-separated) against a ruleset; nothing may panic and every
// failure must come with a message.
func FuzzArgs(f *testing.F) {
	for _, s := range []string{
		"-L -n -v -x --line-numbers", "-L -n DOCKER", "-S DOCKER 1 -v", "-t nat -L", "--list=INPUT 0x1",
		"-c 1,2 -L", "! ! -L", "-L --line -w -W 5", "-LINPUT 2", "--lis", "-nqL", "-t", "-V", "-h",
		"-c -t nat", "--table=raw --counters", "-f /dev/null",
	} {
		f.Add(s)
	}
	rs, err := ParseRuleset(IPv4, TableFilter, "*filter\n:INPUT ACCEPT [0:0]\n:DOCKER - [0:0]\n-A INPUT -j DOCKER\nCOMMIT\n", nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Fields(line)
		var e strings.Builder
		if code := Run(rs, NFT, nil, args, io.Discard, &e); code != 0 && e.Len() == 0 {
			t.Errorf("%q: exit %d without a message", line, code)
		}
		for i, a := range args {
			if a == "-f" || strings.HasPrefix(a, "--f") || (strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && strings.Contains(a, "f")) {
				args = args[:i] // never write files
				break
			}
		}
		e.Reset()
		if code := RunSave(rs, Legacy, nil, time.Time{}, args, io.Discard, &e); code != 0 && e.Len() == 0 {
			t.Errorf("save %q: exit %d without a message", line, code)
		}
	})
}
