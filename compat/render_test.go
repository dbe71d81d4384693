package compat

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
)

// TestFormatNum checks xtables_print_num against FORMAT.md §6's table,
// padded (rule columns) and bare (chain headers), with and without -x.
func TestFormatNum(t *testing.T) {
	for _, tc := range []struct {
		n          uint64
		kmg, exact string
	}{
		{0, "    0 ", "       0 "},
		{99999, "99999 ", "   99999 "},
		{100000, " 100K ", "  100000 "},
		{100499, " 100K ", "  100499 "},
		{100500, " 101K ", "  100500 "},
		{999499, " 999K ", "  999499 "},
		{999500, "1000K ", "  999500 "},
		{9999499, "9999K ", " 9999499 "},
		{9999500, "  10M ", " 9999500 "},
		{10499500, "  11M ", "10499500 "},
		{99999999, " 100M ", "99999999 "},
		{999999999, "1000M ", "999999999 "},
		{1234567890, "1235M ", "1234567890 "},
		{10000000000, "  10G ", "10000000000 "},
		{9999500000000, "  10T ", "9999500000000 "},
		{9876543210987654, "9877T ", "9876543210987654 "},
		{18446744073709551615, "   0K ", "18446744073709551615 "},
	} {
		if got := FormatNum(tc.n, false, true); got != tc.kmg {
			t.Errorf("FormatNum(%d) = %q, want %q", tc.n, got, tc.kmg)
		}
		if got := FormatNum(tc.n, true, true); got != tc.exact {
			t.Errorf("FormatNum(%d, -x) = %q, want %q", tc.n, got, tc.exact)
		}
		if got, want := FormatNum(tc.n, false, false), strings.TrimLeft(tc.kmg, " "); got != want {
			t.Errorf("FormatNum(%d, bare) = %q, want %q", tc.n, got, want)
		}
	}
}

// TestNtop checks glibc's inet_ntop forms, which differ from RFC 5952
// only for IPv4-compatible addresses.
func TestNtop(t *testing.T) {
	for in, want := range map[string]string{
		"::":                 "::",
		"::1":                "::1",
		"fd00:18::5":         "fd00:18::5",
		"2001:db8:0:1::":     "2001:db8:0:1::",
		"2001:db8::1:0:0:1":  "2001:db8::1:0:0:1",
		"1:0:2:0:0:3:0:4":    "1:0:2::3:0:4",
		"::ffff:1.2.3.4":     "::ffff:1.2.3.4",
		"::102:304":          "::1.2.3.4",
		"ffff:ffff:0:ffff::": "ffff:ffff:0:ffff::",
		"1:2:3:4:5:6:7:0":    "1:2:3:4:5:6:7:0",
		"192.0.2.1":          "192.0.2.1",
	} {
		if got := ntop(netip.MustParseAddr(in)); got != want {
			t.Errorf("ntop(%s) = %q, want %q", in, got, want)
		}
	}
}

// TestListRuleLine checks single rule lines against FORMAT.md examples.
func TestListRuleLine(t *testing.T) {
	names := &Names{}
	if err := names.ReadHosts(strings.NewReader("127.0.0.1 localhost\n::1 localhost ip6-localhost\n")); err != nil {
		t.Fatal(err)
	}
	if err := names.ReadServices(strings.NewReader("http 80/tcp\nomniorb 8088/tcp\nmdns 5353/udp\n")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		f    Family
		spec string
		opt  ListOptions
		want string
	}{
		{IPv4, "-j ACCEPT", ListOptions{}, "ACCEPT     all  --  anywhere             anywhere            \n"},
		{IPv4, "", ListOptions{}, "           all  --  anywhere             anywhere            \n"},
		{IPv4, "-d 127.0.0.1/32 ! -i br0 -p tcp -m tcp --dport 9000 -j DNAT --to-destination 172.18.0.5:80", ListOptions{Verbose: true},
			"    0     0 DNAT       tcp  --  !br0   any     anywhere             localhost            tcp dpt:9000 to:172.18.0.5:80\n"},
		{IPv4, "-o docker_gwbridge -j DOCKER", ListOptions{Verbose: true, Numeric: true, LineNumbers: true},
			"1        0     0 DOCKER     0    --  *      docker_gwbridge  0.0.0.0/0            0.0.0.0/0           \n"},
		{IPv4, "! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER", ListOptions{},
			"DOCKER     all  --  anywhere            !127.0.0.0/8          ADDRTYPE match dst-type LOCAL\n"},
		{IPv4, "-p udp -m udp --dport 5353 -j ACCEPT", ListOptions{}, "ACCEPT     udp  --  anywhere             anywhere             udp dpt:mdns\n"},
		{IPv4, "-p tcp -m multiport ! --ports 22,2375 -j ACCEPT", ListOptions{Numeric: true},
			"ACCEPT     6    --  0.0.0.0/0            0.0.0.0/0            multiport ports  !22,2375\n"},
		{IPv6, "! -d ::1/128 -m addrtype --dst-type LOCAL -j DOCKER", ListOptions{},
			"DOCKER     all  --  anywhere            !localhost            ADDRTYPE match dst-type LOCAL\n"},
		{IPv6, "-s 2001:db8::/ffff:ffff:0:ffff:: -j ACCEPT", ListOptions{Numeric: true},
			"ACCEPT     0    --  2001:db8::/ffff:ffff:0:ffff::  ::/0                \n"},
		{IPv4, "-p tcp -m state --state RELATED,ESTABLISHED -m tcp --sport 8088 -j ACCEPT", ListOptions{},
			"ACCEPT     tcp  --  anywhere             anywhere             state RELATED,ESTABLISHED tcp spt:omniorb\n"},
		{IPv4, "-f -j DROP", ListOptions{}, "DROP       all  -f  anywhere             anywhere            \n"},
		{IPv4, "-g ALPHA", ListOptions{}, "ALPHA      all  --  anywhere             anywhere            [goto] \n"},
	} {
		r, err := ParseRule(tc.f, tc.spec)
		if err != nil {
			t.Fatalf("%s: %v", tc.spec, err)
		}
		if got := NewTable(tc.f, TableFilter).ruleLine(1, r, tc.opt, names); got != tc.want {
			t.Errorf("%q %+v:\n got %q\nwant %q", tc.spec, tc.opt, got, tc.want)
		}
	}
}

// TestListErrors checks that a missing chain writes nothing.
func TestListErrors(t *testing.T) {
	tb := NewTable(IPv4, TableNAT)
	var b bytes.Buffer
	if err := tb.List(&b, ListOptions{Chain: "FORWARD"}, nil); err == nil || b.Len() != 0 {
		t.Errorf("List FORWARD in nat: err %v, output %q", err, b.String())
	}
	if err := tb.ListRules(&b, "DOCKER", 0, false, nil); err == nil || b.Len() != 0 {
		t.Errorf("ListRules DOCKER: err %v, output %q", err, b.String())
	}
}
