// Package containerlab holds a containerlab topology (kind + FRR) for
// machines with Docker. Nothing here runs it; the tests check that its files
// parse, point at files that exist, follow the netns lab's address plan, and
// that its FRR configuration loads into a real FRR and comes out the same as
// the netns lab's router.
package containerlab

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/routers"
	"github.com/heraldlb/herald/internal/deploy"
	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/testenv"
)

type topology struct {
	Name     string `json:"name"`
	Topology struct {
		Kinds map[string]node `json:"kinds"`
		Nodes map[string]node `json:"nodes"`
		Links []struct {
			Endpoints []string `json:"endpoints"`
		} `json:"links"`
	} `json:"topology"`
}

type node struct {
	Kind          string   `json:"kind"`
	Image         string   `json:"image"`
	StartupConfig string   `json:"startup-config"`
	Binds         []string `json:"binds"`
	Exec          []string `json:"exec"`
}

func readTopology(t *testing.T) topology {
	t.Helper()
	b, err := os.ReadFile("herald.clab.yml")
	if err != nil {
		t.Fatal(err)
	}
	var topo topology
	if err := yaml.UnmarshalStrict(b, &topo); err != nil {
		t.Fatalf("herald.clab.yml does not parse as a containerlab topology: %v", err)
	}
	return topo
}

func TestTopologyIsWiredAndItsFilesExist(t *testing.T) {
	topo := readTopology(t)
	nodes := topo.Topology.Nodes
	for _, want := range []string{"herald", "herald-control-plane", "herald-worker", "herald-worker2", "frr", "client", "ext", "br-herald"} {
		if _, ok := nodes[want]; !ok {
			t.Errorf("topology has no node %q", want)
		}
	}
	linked := map[string]bool{}
	for _, l := range topo.Topology.Links {
		if len(l.Endpoints) != 2 {
			t.Errorf("link %v does not have two endpoints", l.Endpoints)
		}
		for _, ep := range l.Endpoints {
			name, iface, ok := strings.Cut(ep, ":")
			if _, defined := nodes[name]; !ok || iface == "" || !defined {
				t.Errorf("link endpoint %q does not name a defined node and interface", ep)
			}
			linked[name] = true
		}
	}
	for name, n := range nodes {
		if n.Kind != "k8s-kind" && !linked[name] {
			t.Errorf("node %s (%s) is not linked to anything", name, n.Kind)
		}
		for _, bind := range n.Binds {
			src, _, _ := strings.Cut(bind, ":")
			if _, err := os.Stat(src); err != nil {
				t.Errorf("node %s binds %s, which does not exist: %v", name, src, err)
			}
		}
		if n.StartupConfig != "" {
			if _, err := os.Stat(n.StartupConfig); err != nil {
				t.Errorf("node %s: startup-config %s: %v", name, n.StartupConfig, err)
			}
		}
	}
	// The README installs Herald and the samples from this repository by path.
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	refs := regexp.MustCompile(`\.\./[\w./-]+`).FindAllString(string(readme), -1)
	for _, want := range []string{"../../charts/herald", "../../config/default"} {
		if !slices.Contains(refs, want) {
			t.Errorf("README does not install Herald from %s; references: %v", want, refs)
		}
	}
	if !strings.Contains(string(readme), "./install-herald.sh") {
		t.Error("README does not run install-herald.sh")
	}
	for _, ref := range refs {
		if _, err := os.Stat(ref); err != nil {
			t.Errorf("README references %s: %v", ref, err)
		}
	}
}

// install-herald.sh loads the archives make images writes, named as the
// chart names the images, and installs the chart: no image that does not exist.
func TestInstallScriptLoadsTheImagesAndInstallsTheChart(t *testing.T) {
	b, err := os.ReadFile("install-herald.sh")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat("install-herald.sh"); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("install-herald.sh is not executable: %v", err)
	}
	script := string(b)
	ch, err := deploy.LoadChart("")
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := deploy.Images(ch)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"make -C \"$root\" images", "kind load image-archive", "helm upgrade --install herald \"$root/charts/herald\"", "--namespace herald-system"} {
		if !strings.Contains(script, want) {
			t.Errorf("install-herald.sh lacks %q", want)
		}
	}
	for _, img := range imgs {
		if !strings.Contains(script, img.Name()) {
			t.Errorf("install-herald.sh does not load %s (dist/images/%s.tar)", img.Ref(), img.Name())
		}
	}
}

// The containerlab site uses the netns lab's address plan and AS numbers.
func TestTopologyFollowsTheLabAddressPlan(t *testing.T) {
	topo := readTopology(t)
	nodes := topo.Topology.Nodes
	want := map[string][]string{
		"frr":                  {"10.0.0.1/24", "fd00:10::1/64", "10.1.0.1/24", "fd00:11::1/64"},
		"herald-control-plane": {"10.0.0.11/24", "fd00:10::11/64"},
		"herald-worker":        {"10.0.0.12/24", "fd00:10::12/64"},
		"herald-worker2":       {"10.0.0.13/24", "fd00:10::13/64"},
		"client":               {"10.0.0.100/24", "fd00:10::100/64"},
		"ext":                  {"10.1.0.2/24", "fd00:11::2/64"},
	}
	for name, addrs := range want {
		got := addresses(nodes[name].Exec)
		for _, a := range addrs {
			if !slices.Contains(got, a) {
				t.Errorf("%s should have %s (netns lab plan); has %v", name, a, got)
			}
			p := netip.MustParsePrefix(a)
			if !p.Overlaps(lab.LANv4) && !p.Overlaps(lab.LANv6) && !p.Overlaps(lab.ExtFRRv4) && !p.Overlaps(lab.ExtFRRv6) {
				t.Errorf("%s address %s is outside the lab's link prefixes", name, a)
			}
		}
	}
	if got := lab.FRRConfig().RouterID.String(); !slices.Contains(addresses(nodes["frr"].Exec), got+"/24") {
		t.Errorf("FRR's LAN address differs from the netns lab's router id %s", got)
	}
	// The L2 pool is on-link for the LAN client, as in the netns lab.
	if !slices.Contains(nodes["client"].Exec, "ip route add "+lab.L2PoolV4.String()+" dev eth1") {
		t.Errorf("the LAN client does not treat %s as on-link: %v", lab.L2PoolV4, nodes["client"].Exec)
	}

	var kind struct {
		Networking struct {
			IPFamily      string `json:"ipFamily"`
			ServiceSubnet string `json:"serviceSubnet"`
		} `json:"networking"`
		Nodes []struct {
			Role string `json:"role"`
		} `json:"nodes"`
	}
	b, err := os.ReadFile(nodes["herald"].StartupConfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &kind); err != nil {
		t.Fatalf("kind config: %v", err)
	}
	if len(kind.Nodes) != 3 || kind.Networking.IPFamily != "dual" || kind.Networking.ServiceSubnet != testenv.ServiceCIDRs {
		t.Errorf("kind cluster: %d nodes, family %q, services %q; want 3 nodes, dual, %s",
			len(kind.Nodes), kind.Networking.IPFamily, kind.Networking.ServiceSubnet, testenv.ServiceCIDRs)
	}
}

var addrRE = regexp.MustCompile(`^ip addr add (\S+) dev `)

func addresses(execs []string) []string {
	var out []string
	for _, e := range execs {
		if m := addrRE.FindStringSubmatch(e); m != nil {
			out = append(out, m[1])
		}
	}
	return out
}

func TestFRRConfigPassesVtyshDryRun(t *testing.T) {
	if _, err := exec.LookPath("vtysh"); err != nil {
		t.Skip("vtysh (Debian frr) not installed:", err)
	}
	out, err := exec.Command("vtysh", "--dryrun", "-f", "frr/frr.conf").CombinedOutput()
	if err != nil {
		t.Fatalf("vtysh --dryrun rejects frr/frr.conf: %v\n%s", err, out)
	}
}

// frr/frr.conf loaded into a running FRR gives the same BGP and BFD
// configuration as the netns lab's FRR router, started from lab.FRRConfig().
func TestFRRConfigMatchesTheLabRouter(t *testing.T) {
	if err := netns.RequireRoot(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reg := netns.New(netns.UniquePrefix(), nil)
	t.Cleanup(func() { _ = reg.Close() })
	start := func(cfg routers.FRRConfig) *routers.FRR {
		ns, err := reg.Add(ctx, cfg.Name)
		if err != nil {
			t.Fatal(err)
		}
		r, err := routers.StartFRR(ctx, reg, ns, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	labRouter := start(lab.FRRConfig())
	bare := lab.FRRConfig()
	bare.Name, bare.PeerGroups, bare.BFDProfiles = "clab", nil, nil
	clab := start(bare)
	file, err := filepath.Abs("frr/frr.conf")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(ctx, "vtysh", "--vty_socket", clab.Dir, "-f", file).CombinedOutput(); err != nil {
		t.Fatalf("loading frr/frr.conf into a running FRR: %v\n%s", err, out)
	}
	want, err := runningConfig(ctx, labRouter)
	if err != nil {
		t.Fatal(err)
	}
	got, err := runningConfig(ctx, clab)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("frr/frr.conf differs from the netns lab's FRR router.\ncontainerlab:\n%s\nnetns lab:\n%s", got, want)
	}
}

// runningConfig is the router's BGP and BFD configuration, without the lines
// that name the router or its files.
func runningConfig(ctx context.Context, r *routers.FRR) (string, error) {
	out, err := r.Vtysh(ctx, "show running-config")
	if err != nil {
		return "", err
	}
	var keep []string
	for _, line := range strings.Split(out, "\n") {
		l := strings.TrimSpace(line)
		if l == "" || l == "!" || strings.HasPrefix(l, "hostname") || strings.HasPrefix(l, "log ") ||
			strings.HasPrefix(l, "frr ") || strings.HasPrefix(l, "Building") || strings.HasPrefix(l, "Current configuration") ||
			strings.HasPrefix(l, "end") {
			continue
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "\n"), nil
}
