package netlab

import (
	"net/netip"
	"testing"
)

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"h1": true, "hp": true, "client-2": true, "a_b": true, "0": true,
		"": false, "H1": false, "-x": false, "_x": false, "a b": false, "a/b": false, "a.b": false,
		"abcdefghijklmnopqrstuvwxyz01234": true, "abcdefghijklmnopqrstuvwxyz012345": false,
	} {
		if got := validName(name); got != want {
			t.Errorf("validName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestParseNamespace(t *testing.T) {
	for name, want := range map[string]struct {
		pid    int
		suffix string
		ok     bool
	}{
		"netlab-123-0badcafe-h1":       {123, "0badcafe", true},
		"netlab-123-0badcafe-sw":       {123, "0badcafe", true},
		"netlab-123-0badcafe-a-b":      {123, "0badcafe", true},
		"netlab-123-0badcafe-probe":    {123, "0badcafe", true},
		"netlab-123-0bad-h1":           {},
		"netlab-x-0badcafe-h1":         {},
		"netlab-0-0badcafe-h1":         {},
		"netlab-123-0badcafe":          {},
		"docker-123-0badcafe-h1":       {},
		"cni-1234-5678-9abc-def0-1234": {},
	} {
		pid, suffix, ok := parseNamespace(name)
		if ok != want.ok || (ok && (pid != want.pid || suffix != want.suffix)) {
			t.Errorf("parseNamespace(%q) = %d, %q, %v; want %+v", name, pid, suffix, ok, want)
		}
	}
}

func TestFreeSubnetSkipsUsedNetworks(t *testing.T) {
	p := netip.MustParsePrefix
	cases := []struct {
		start uint32
		used  []netip.Prefix
		want  string
	}{
		{0, nil, "10.64.0.0/24"},
		{5, nil, "10.64.5.0/24"},
		{256, nil, "10.65.0.0/24"},
		{0, []netip.Prefix{p("10.64.0.0/24"), p("10.64.1.0/24")}, "10.64.2.0/24"},
		{0, []netip.Prefix{p("10.64.0.0/16")}, "10.65.0.0/24"},
		{subnetCount - 1, []netip.Prefix{p("10.127.255.0/24")}, "10.64.0.0/24"}, // wraps around
		{7, []netip.Prefix{p("192.168.1.0/24"), p("127.0.0.0/8")}, "10.64.7.0/24"},
	}
	for _, c := range cases {
		got, err := freeSubnet(c.start, c.used)
		if err != nil || got.String() != c.want {
			t.Errorf("freeSubnet(%d, %v) = %s, %v; want %s", c.start, c.used, got, err, c.want)
		}
	}
	if _, err := freeSubnet(0, []netip.Prefix{p("10.0.0.0/8")}); err == nil {
		t.Error("freeSubnet found room inside a used 10.0.0.0/8")
	}
}
