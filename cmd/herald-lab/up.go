package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/internal/deploy"
	"github.com/heraldlb/herald/internal/testenv"
)

type upFlags struct {
	nodes                    int
	dir                      string
	keep, noHerald, verbose  bool
	kubelet                  bool
	images                   string
	controller, speaker      string
	controllerArgs, spkrArgs string
	samples, demo            string
	ingressIPs               string
	wait                     time.Duration
}

func parseUp(args []string, root string) upFlags {
	var f upFlags
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	fs.IntVar(&f.nodes, "nodes", 3, "number of Kubernetes nodes")
	fs.StringVar(&f.dir, "dir", "", "run directory (default: a new temporary directory, removed on exit)")
	fs.BoolVar(&f.keep, "keep", false, "keep the run directory (logs) after exit")
	fs.StringVar(&f.controller, "controller", filepath.Join(root, "bin", "herald-controller"), "controller binary (skipped if missing)")
	fs.StringVar(&f.controllerArgs, "controller-args", "--kubeconfig={kubeconfig} --metrics-bind-address=0 --health-probe-bind-address=0", "controller arguments ({kubeconfig} expands); it runs in the host namespace, so no listeners by default")
	fs.StringVar(&f.speaker, "speaker", filepath.Join(root, "bin", "herald-speaker"), "speaker binary, one per node (skipped if missing)")
	fs.StringVar(&f.spkrArgs, "speaker-args", "--kubeconfig={kubeconfig} --node-name={node}", "speaker arguments ({node}, {kubeconfig}, {nodeIPv4}, {nodeIPv6} expand)")
	fs.BoolVar(&f.noHerald, "no-herald", false, "do not start Herald; set the Service's IP by hand")
	fs.StringVar(&f.samples, "samples", "config/samples/ippools.yaml,config/samples/l2advertisement.yaml,config/samples/bgp.yaml", "comma-separated manifests applied first (relative to the repository)")
	fs.StringVar(&f.demo, "demo", lab.DemoManifest, "the demo workload: Deployment web and LoadBalancer Service web in namespace demo")
	fs.StringVar(&f.ingressIPs, "ingress-ip", "", "set the demo Service's external IPs by hand (comma-separated), as when Herald does not run")
	fs.DurationVar(&f.wait, "wait", time.Minute, "how long to wait for Herald to assign the external IP")
	fs.BoolVar(&f.verbose, "v", false, "log progress")
	fs.BoolVar(&f.kubelet, "kubelet", false, "run the nodes as real kubelets (containerd, runc) and install Herald from its Helm chart and images, as a user would")
	fs.StringVar(&f.images, "images", filepath.Join(root, "dist", "images"), "with --kubelet: folder of the image archives from make images")
	_ = fs.Parse(args)
	return f
}

func up(args []string) error {
	root, err := testenv.RepoRoot()
	if err != nil {
		return err
	}
	f := parseUp(args, root)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	opts := lab.Options{Nodes: f.nodes, Dir: f.dir, KeepDir: f.keep, EchoCommand: []string{self, "echo"}, Log: log}
	if f.kubelet {
		opts.Kubelet = true
		for _, name := range []string{"herald-controller", "herald-speaker"} {
			p := filepath.Join(f.images, name+".tar")
			if !exists(p) {
				return fmt.Errorf("no image %s: run make images first", p)
			}
			opts.Images = append(opts.Images, p)
		}
	}
	fmt.Println("bringing the Herald lab up ...")
	sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	l, err := lab.Start(sctx, opts)
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("\ntearing the lab down ...")
		if err := l.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "herald-lab: teardown:", err)
		}
	}()
	fmt.Printf("lab %s up in %v: %d nodes, FRR %s (AS %d), BIRD %s (AS %d)\n",
		l.Prefix, l.StartupTime.Round(100*time.Millisecond), len(l.Nodes), l.FRR.IPv4, lab.FRRASN, l.BIRD.IPv4, lab.BIRDASN)

	herald := !f.noHerald && f.ingressIPs == "" && (exists(f.controller) || f.kubelet)
	speakers := false
	if herald && f.kubelet {
		if err := installChart(ctx, l); err != nil {
			return err
		}
		speakers = true
	} else if herald {
		if speakers, err = startHerald(l, f); err != nil {
			return err
		}
	} else if !f.noHerald && f.ingressIPs == "" {
		fmt.Printf("no controller at %s (make build): setting the external IP by hand\n", f.controller)
	}
	demo, err := deployDemo(ctx, l, root, f, speakers)
	if err != nil {
		return err
	}
	printUsage(l, demo)
	if herald && speakers {
		showBGP(ctx, l, f.wait)
	}
	fmt.Println("\nThe lab runs until Ctrl-C.")
	<-ctx.Done()
	return nil
}

func exists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir()
}

// startHerald runs the controller in the host namespace and one speaker per
// node (if the speaker binary exists), and reports whether speakers run.
func startHerald(l *lab.Lab, f upFlags) (bool, error) {
	c, err := l.StartController(lab.ComponentSpec{Binary: f.controller, Args: strings.Fields(f.controllerArgs)})
	if err != nil {
		return false, err
	}
	fmt.Printf("started %s (pid %d), log %s\n", c.Name, c.Proc().PID, c.LogPath)
	if !exists(f.speaker) {
		fmt.Printf("no speaker at %s: nothing will announce the IPs\n", f.speaker)
		return false, nil
	}
	speakers, err := l.StartSpeakers(lab.ComponentSpec{Binary: f.speaker, Args: strings.Fields(f.spkrArgs)})
	if err != nil {
		return false, err
	}
	for _, s := range speakers {
		fmt.Printf("started %s (pid %d), log %s\n", s.Name, s.Proc().PID, s.LogPath)
	}
	return true, nil
}

// installChart installs Herald from charts/herald with the Helm library,
// as `helm install herald charts/herald -n herald-system --create-namespace
// --wait` would, onto the lab's real nodes.
func installChart(ctx context.Context, l *lab.Lab) error {
	ch, err := deploy.LoadChart("")
	if err != nil {
		return err
	}
	helm, err := deploy.NewClient(l.Env.Kubeconfig, nil)
	if err != nil {
		return err
	}
	begin := time.Now()
	fmt.Println("helm install herald charts/herald -n herald-system --create-namespace --wait ...")
	if err := helm.Install(ctx, ch, nil, 3*time.Minute); err != nil {
		return err
	}
	fmt.Printf("Herald installed from its chart in %v: a controller Deployment (2 replicas) and a speaker DaemonSet on every node\n", time.Since(begin).Round(100*time.Millisecond))
	return nil
}

// demoResult is what the demo showed.
type demoResult struct {
	ips    []string
	client *lab.Host
	reply  string
	err    error
}

// deployDemo applies the samples and the demo, gets the Service an external
// IP (from Herald, or by hand plus a static route on FRR) and sends one
// request from the client that should reach it.
func deployDemo(ctx context.Context, l *lab.Lab, root string, f upFlags, speakers bool) (demoResult, error) {
	var res demoResult
	for _, s := range strings.Split(f.samples, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if err := l.Apply(ctx, filepath.Join(root, s)); err != nil {
			fmt.Fprintf(os.Stderr, "warning: applying %s: %v\n", s, err)
		}
	}
	if err := l.Apply(ctx, filepath.Join(root, f.demo)); err != nil {
		return res, err
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := l.WaitReadyPods(wctx, "demo", "app=web", 1); err != nil {
		return res, err
	}
	manual := f.ingressIPs
	if manual == "" && (f.noHerald || !exists(f.controller)) {
		manual = "203.0.113.10,2001:db8:200::10"
	}
	if manual != "" {
		res.ips = strings.Split(manual, ",")
		if err := l.SetIngressIP(ctx, "demo", "web", res.ips...); err != nil {
			return res, err
		}
		if err := routeByHand(ctx, l, res.ips); err != nil {
			return res, err
		}
	} else {
		fmt.Printf("waiting up to %v for Herald to assign an external IP to demo/web ...\n", f.wait)
		ictx, cancel := context.WithTimeout(ctx, f.wait)
		ips, err := l.WaitIngressIPs(ictx, "demo", "web")
		cancel()
		if err != nil {
			if c := l.Component("controller"); c != nil {
				err = fmt.Errorf("%w (controller log: %s)", err, c.LogPath)
			}
			return res, err
		}
		res.ips = ips
	}
	res.client = clientFor(l, res.ips[0])
	if manual == "" && !speakers {
		res.err = errors.New("no speaker runs, so nothing announces the IP yet (make build, or --speaker)")
		return res, nil
	}
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		rep, err := res.client.Get(rctx, lab.URL(res.ips[0], 80))
		if err == nil {
			res.reply, res.err = fmt.Sprintf("pod %s on node %s answered (it saw the client as %s)", rep.Pod, rep.Node, rep.Client), nil
			return res, nil
		}
		res.err = err
		select {
		case <-rctx.Done():
			return res, nil // shown to the user; the lab stays up for a look
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// showBGP shows the demo's routed Service: its IP, FRR's ECMP route with one
// next hop per node, and requests from the external client through FRR.
func showBGP(ctx context.Context, l *lab.Lab, wait time.Duration) {
	fmt.Printf("\nwaiting up to %v for Service demo/web-bgp (pool routed, advertised over BGP) ...\n", wait)
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	ips, err := l.WaitIngressIPs(wctx, "demo", "web-bgp")
	if err != nil {
		fmt.Printf("demo/web-bgp got no IP: %v\n", err)
		return
	}
	fmt.Printf("Service demo/web-bgp external IPs: %s\n", strings.Join(ips, ", "))
	ip, err := netip.ParseAddr(ips[0])
	if err != nil || l.FRR.FRR == nil {
		return
	}
	var hops []string
	for len(hops) < len(l.Nodes) && wctx.Err() == nil {
		hops = hops[:0]
		if routes, err := l.FRR.FRR.RIBRoutes(wctx, netip.PrefixFrom(ip, ip.BitLen())); err == nil {
			for _, r := range routes {
				for _, h := range r.NextHops {
					if h.FIB {
						hops = append(hops, h.IP)
					}
				}
			}
		}
		if len(hops) < len(l.Nodes) {
			time.Sleep(200 * time.Millisecond)
		}
	}
	fmt.Printf("FRR's route to %s: next hops %s\n", ip, strings.Join(hops, ", "))
	url := lab.URL(ips[0], 80)
	nodes := map[string]int{}
	for range 12 {
		if rep, err := l.Ext.Get(wctx, url); err == nil {
			nodes[rep.Node]++
		}
	}
	fmt.Printf("12 requests from %s through FRR to %s were answered on nodes %v\n", l.Ext.Name, url, nodes)
}

// routeByHand stands in for a speaker: IPs outside the LAN's on-link pool get
// a static route on FRR toward node1, so the external client reaches them.
func routeByHand(ctx context.Context, l *lab.Lab, ips []string) error {
	n := l.Nodes[0]
	for _, s := range ips {
		ip, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return err
		}
		if lab.L2PoolV4.Contains(ip) || lab.L2PoolV6.Contains(ip) {
			fmt.Printf("note: %s is in the Layer 2 pool; without a speaker nobody answers ARP/NDP for it\n", ip)
			continue
		}
		cmd, via := "ip route "+ip.String()+"/32 ", n.IPv4.String()
		if ip.Is6() {
			cmd, via = "ipv6 route "+ip.String()+"/128 ", n.IPv6.String()
		}
		if l.FRR.FRR == nil {
			return errors.New("no FRR router to route the IP by hand")
		}
		if err := l.FRR.FRR.Configure(ctx, cmd+via); err != nil {
			return err
		}
		fmt.Printf("static route on FRR: %s via %s (%s)\n", ip, via, n.Name)
	}
	return nil
}

// clientFor picks the LAN client for Layer 2 pool IPs, the external client otherwise.
func clientFor(l *lab.Lab, ip string) *lab.Host {
	a, err := netip.ParseAddr(ip)
	if err == nil && (lab.L2PoolV4.Contains(a) || lab.L2PoolV6.Contains(a)) {
		return l.Client
	}
	return l.Ext
}

func printUsage(l *lab.Lab, d demoResult) {
	url := lab.URL(d.ips[0], 80)
	fmt.Printf("\nService demo/web external IPs: %s\n", strings.Join(d.ips, ", "))
	if d.err != nil {
		fmt.Printf("request from %s to %s failed: %v\n", d.client.Name, url, d.err)
	} else {
		fmt.Printf("request from %s to %s: %s\n", d.client.Name, url, d.reply)
	}
	fmt.Printf(`
kubectl:        export KUBECONFIG=%s
                %s get nodes,pods,svc -A -o wide
LAN client:     ip netns exec %s curl %s
external:       ip netns exec %s curl %s
a node:         ip netns exec %s bash
FRR:            ip netns exec %s vtysh --vty_socket %s -c 'show bgp summary'
BIRD:           birdc -s %s show protocols
logs:           %s
address plan:   docs/lab.md
`, l.Env.Kubeconfig, filepath.Join(l.Env.BinDir, "kubectl"),
		l.Client.NS.Name, url, l.Ext.NS.Name, url, l.Nodes[0].NS.Name,
		l.FRR.NS.Name, frrDir(l), birdSocket(l), filepath.Join(l.Dir, "logs"))
}

func frrDir(l *lab.Lab) string {
	if l.FRR.FRR == nil {
		return "-"
	}
	return l.FRR.FRR.Dir
}

func birdSocket(l *lab.Lab) string {
	if l.BIRD.BIRD == nil {
		return "-"
	}
	return filepath.Join(l.BIRD.BIRD.Dir, "bird.ctl")
}
