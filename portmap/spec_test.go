package portmap

import (
	"errors"
	"testing"

	"github.com/dnft/dnft/chains"
	"github.com/stretchr/testify/require"
)

func TestParseSpec(t *testing.T) {
	pr := func(a, b uint16) PortRange { return PortRange{a, b} }
	for _, tc := range []struct {
		in   string
		want Spec
		str  string // canonical form
	}{
		{"80", Spec{ContainerPorts: pr(80, 80), Proto: TCP}, "80/tcp"},
		{"80/udp", Spec{ContainerPorts: pr(80, 80), Proto: UDP}, "80/udp"},
		{"80/SCTP", Spec{ContainerPorts: pr(80, 80), Proto: SCTP}, "80/sctp"},
		{"80/", Spec{ContainerPorts: pr(80, 80), Proto: TCP}, "80/tcp"}, // Docker: empty proto is tcp
		{"8080:80", Spec{HostPorts: pr(8080, 8080), ContainerPorts: pr(80, 80), Proto: TCP}, "8080:80/tcp"},
		{":80", Spec{ContainerPorts: pr(80, 80), Proto: TCP}, "80/tcp"},
		{"127.0.0.1:8080:80/udp", Spec{HostIP: ip("127.0.0.1"), HostPorts: pr(8080, 8080), ContainerPorts: pr(80, 80), Proto: UDP}, "127.0.0.1:8080:80/udp"},
		{"127.0.0.1::80", Spec{HostIP: ip("127.0.0.1"), ContainerPorts: pr(80, 80), Proto: TCP}, "127.0.0.1::80/tcp"},
		{"0.0.0.0:80:80", Spec{HostIP: ip("0.0.0.0"), HostPorts: pr(80, 80), ContainerPorts: pr(80, 80), Proto: TCP}, "0.0.0.0:80:80/tcp"},
		{"[::1]:8080:80", Spec{HostIP: ip("::1"), HostPorts: pr(8080, 8080), ContainerPorts: pr(80, 80), Proto: TCP}, "[::1]:8080:80/tcp"},
		{"[::1]::80", Spec{HostIP: ip("::1"), ContainerPorts: pr(80, 80), Proto: TCP}, "[::1]::80/tcp"},
		{"::1:8080:80", Spec{HostIP: ip("::1"), HostPorts: pr(8080, 8080), ContainerPorts: pr(80, 80), Proto: TCP}, "[::1]:8080:80/tcp"},
		{"[2001:db8::1]:53:53/udp", Spec{HostIP: ip("2001:db8::1"), HostPorts: pr(53, 53), ContainerPorts: pr(53, 53), Proto: UDP}, "[2001:db8::1]:53:53/udp"},
		{"[192.0.2.1]:1:2", Spec{HostIP: ip("192.0.2.1"), HostPorts: pr(1, 1), ContainerPorts: pr(2, 2), Proto: TCP}, "192.0.2.1:1:2/tcp"},
		{"9000-9019:9000-9019", Spec{HostPorts: pr(9000, 9019), ContainerPorts: pr(9000, 9019), Proto: TCP}, "9000-9019:9000-9019/tcp"},
		{"8000-8010:80", Spec{HostPorts: pr(8000, 8010), ContainerPorts: pr(80, 80), Proto: TCP}, "8000-8010:80/tcp"},
		{"1000-1002", Spec{ContainerPorts: pr(1000, 1002), Proto: TCP}, "1000-1002/tcp"},
		{"65535:65535/sctp", Spec{HostPorts: pr(65535, 65535), ContainerPorts: pr(65535, 65535), Proto: SCTP}, "65535:65535/sctp"},
		{"0080", Spec{ContainerPorts: pr(80, 80), Proto: TCP}, "80/tcp"},
		{"80-80:90-90", Spec{HostPorts: pr(80, 80), ContainerPorts: pr(90, 90), Proto: TCP}, "80:90/tcp"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSpec(tc.in)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.str, got.String())
			again, err := ParseSpec(got.String())
			require.NoError(t, err)
			require.Equal(t, got, again)
		})
	}
}

func TestParseSpecErrors(t *testing.T) {
	for _, tc := range []struct {
		in, reason string
	}{
		{"", "empty"},
		{"0", `container port "0": port 0 is not allowed`},
		{"0:80", `host port "0": port 0 is not allowed`},
		{"80:0", `container port "0": port 0`},
		{"65536", `container port "65536": port 65536 is greater than 65535`},
		{"99999999999:80", `host port "99999999999": port 99999999999 is greater than 65535`},
		{"8080:70000", `container port "70000": port 70000 is greater than 65535`},
		{"80-70", `container port "80-70": bad range: 70 is before 80`},
		{"8000-:80", `host port "8000-": bad range: missing port`},
		{"-80", `container port "-80": bad range: missing port`},
		{"80-90-100", `container port "80-90-100": not a port number`},
		{"8000-8001:80-82", "host ports 8000-8001 (2) and container ports 80-82 (3): range lengths differ"},
		{"8000:80-81", "host ports 8000 (1) and container ports 80-81 (2): range lengths differ"},
		{"1.2.3.4.5:80:80", `host IP "1.2.3.4.5": not an IP address`},
		{"localhost:80:80", `host IP "localhost": not an IP address`},
		{"[::1:80:80", `host IP "[::1": unbalanced brackets`},
		{"[::1]:80", `host IP "[:": `},
		{"fe80::1%eth0:80:80", `host IP "fe80::1%eth0": must not have a zone`},
		{"10.0.0.0/8:80:80", `host IP "10.0.0.0/8": not an IP address`},
		{"80/icmp", `unknown proto "icmp"`},
		{"80/tcp/udp", `unknown proto "tcp/udp"`},
		{"8080:", "no container port"},
		{"8080:/udp", "no container port"},
		{"http", `container port "http": not a port number`},
		{" 80", `container port " 80": not a port number`},
		{"80/tcp:90", `host port "80/tcp": not a port number`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := ParseSpec(tc.in)
			var fe *chains.FieldError
			require.True(t, errors.As(err, &fe), "want a FieldError, got %v", err)
			require.Equal(t, SpecField, fe.Field)
			require.Equal(t, tc.in, fe.Value, "the error names the spec")
			require.Contains(t, fe.Reason, tc.reason)
		})
	}
}

// FuzzParseSpec: ParseSpec never panics, refuses with a FieldError naming
// the input, and what it accepts is valid and round-trips through String.
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{
		"80", "8080:80", "127.0.0.1::80/udp", "[::1]:8080:80/sctp", "::1:1:2", "9000-9019:9000-9019",
		"8000-8010:80", "1000-1002/udp", "0", "65536", "80-70", "[::1", "80/", "a:b:c:d:e", ":", "::", "[]::80",
		"[::ffff:1.2.3.4]:1:1", "1-65535", "65535-65535:1", "%", "/tcp", "80/TcP",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := ParseSpec(s)
		if err != nil {
			var fe *chains.FieldError
			if !errors.As(err, &fe) || fe.Field != SpecField || fe.Value != s {
				t.Fatalf("ParseSpec(%q): want a %s FieldError naming the input, got %#v", s, SpecField, err)
			}
			return
		}
		switch {
		case sp.ContainerPorts.Start == 0 || sp.ContainerPorts.End < sp.ContainerPorts.Start:
			t.Fatalf("ParseSpec(%q): bad container ports %+v", s, sp.ContainerPorts)
		case !sp.HostPorts.IsZero() && (sp.HostPorts.Start == 0 || sp.HostPorts.End < sp.HostPorts.Start):
			t.Fatalf("ParseSpec(%q): bad host ports %+v", s, sp.HostPorts)
		case sp.Proto.Number() == 0:
			t.Fatalf("ParseSpec(%q): bad proto %q", s, sp.Proto)
		case sp.HostIP.IsValid() && sp.HostIP.Zone() != "":
			t.Fatalf("ParseSpec(%q): zone in %s", s, sp.HostIP)
		}
		if h, c := sp.HostPorts.Len(), sp.ContainerPorts.Len(); h != 0 && h != c && c != 1 {
			t.Fatalf("ParseSpec(%q): range lengths %d and %d accepted", s, h, c)
		}
		str := sp.String()
		again, err := ParseSpec(str)
		if err != nil {
			t.Fatalf("ParseSpec(%q) = %q, which does not parse: %v", s, str, err)
		}
		if again != sp {
			t.Fatalf("ParseSpec(%q) = %+v, but its String %q parses as %+v", s, sp, str, again)
		}
		if again.String() != str {
			t.Fatalf("String not stable: %q then %q", str, again.String())
		}
	})
}

func TestPortRange(t *testing.T) {
	require.Equal(t, 0, PortRange{}.Len())
	require.Equal(t, 20, PortRange{9000, 9019}.Len())
	require.Equal(t, 65535, PortRange{1, 65535}.Len())
	require.True(t, PortRange{5, 6}.Contains(6))
	require.False(t, PortRange{}.Contains(0))
	require.Equal(t, "1-2", PortRange{1, 2}.String())
}
