package reference

import (
	"strings"
	"testing"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/portmap"
	"github.com/dnft/dnft/test/harness"
)

// TestIngressRefCount: ingress ports are reference counted as swarm counts
// them. Publishing the same port, proto, target and gateway again runs no
// command; only the last unpublication runs the -D commands; another
// target or gateway on a held port is an error that changes nothing.
func TestIngressRefCount(t *testing.T) {
	harness.RequireRoot(t, refTools...)
	for _, v := range variants {
		t.Run(v.String(), func(t *testing.T) {
			ctx := testCtx(t)
			p := newProgrammer(t, v, chains.DaemonConfig{UserlandProxy: true, IPv6: true})
			initial := saveAll(t, p)
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(p.PublishIngress(ctx, "", portmap.TCP, 8080, addr("172.18.0.2")))
			once, ncmds := saveAll(t, p), len(p.Commands())
			must(p.PublishIngress(ctx, "docker_gwbridge", portmap.TCP, 8080, addr("172.18.0.2")))
			must(p.PublishIngress(ctx, "", portmap.TCP, 8080, addr("172.18.0.2")))
			if got := len(p.Commands()); got != ncmds {
				t.Fatalf("re-publishing ran %d commands: %v", got-ncmds, p.Commands()[ncmds:])
			}
			for _, tc := range []struct {
				name string
				err  error
				want string
			}{
				{"other target", p.PublishIngress(ctx, "", portmap.TCP, 8080, addr("172.18.0.3")), "already published to 172.18.0.2"},
				{"other gateway", p.PublishIngress(ctx, "gw2", portmap.TCP, 8080, addr("172.18.0.2")), "on docker_gwbridge"},
				{"unpublish on other gateway", p.UnpublishIngress(ctx, "gw2", portmap.TCP, 8080), "not \"gw2\""},
			} {
				if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
					t.Errorf("%s: err = %v, want one containing %q", tc.name, tc.err, tc.want)
				}
			}
			if got := saveAll(t, p); got != once {
				t.Fatalf("re-publishing or refused operations changed the ruleset:\n%s\nwant:\n%s", got, once)
			}
			// Another family is another port: the IPv6 publication has its
			// own count.
			must(p.PublishIngress(ctx, "", portmap.TCP, 8080, addr("fd00:18::2")))
			// Unpublish removes one reference in every family: v4 3→2, v6 1→0.
			must(p.UnpublishIngress(ctx, "", portmap.TCP, 8080))
			if got := saveAll(t, p); got != once {
				t.Fatalf("after the IPv6 port's last unpublication:\n%s\nwant:\n%s", got, once)
			}
			must(p.UnpublishIngress(ctx, "", portmap.TCP, 8080))
			if got := saveAll(t, p); got != once {
				t.Fatal("an unpublication that left a reference changed the ruleset")
			}
			must(p.UnpublishIngress(ctx, "", portmap.TCP, 8080))
			if got := saveAll(t, p); got != initial {
				t.Fatalf("after the last unpublication:\n%s\nwant the post-init state:\n%s", got, initial)
			}
			if err := p.UnpublishIngress(ctx, "", portmap.TCP, 8080); err == nil || !strings.Contains(err.Error(), "not published") {
				t.Fatalf("unpublishing once too often: err = %v", err)
			}
		})
	}
}
