package install_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/e2e/routers"
	"github.com/heraldlb/herald/internal/testenv"
	"github.com/heraldlb/herald/internal/testkit"
)

// metricsLockedDown scrapes every Herald pod as a Prometheus does: the
// ServiceAccount bound to the installed ClusterRole herald-metrics-reader
// gets the metrics over HTTPS; no token, a ServiceAccount without the role
// and plain HTTP get none. The speakers (host network) listen on their
// node address only.
func metricsLockedDown(t *testing.T, l *lab.Lab) {
	ctx := labtest.Context(t, 2*time.Minute)
	reader, err := l.MetricsToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	outsider, err := l.Env.ServiceAccountToken(ctx, lab.MetricsReaderNamespace, "outsider", "")
	if err != nil {
		t.Fatal(err)
	}
	type endpoint struct {
		pod, from, addr, metric string
	}
	var endpoints []endpoint
	for _, c := range []struct {
		component, metric string
		port              int
	}{
		{"speaker", "herald_memberlist_members", lab.SpeakerMetricsPort},
		{"controller", "herald_allocations_total", 7472},
	} {
		pods, err := l.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=" + c.component})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pods.Items {
			if p.Status.PodIP == "" || p.DeletionTimestamp != nil {
				continue
			}
			endpoints = append(endpoints, endpoint{p.Name, p.Spec.NodeName, net.JoinHostPort(p.Status.PodIP, strconv.Itoa(c.port)), c.metric})
		}
	}
	if len(endpoints) != len(l.Nodes)+2 {
		t.Fatalf("%d metrics endpoints, want a speaker per node and two controllers: %v", len(endpoints), endpoints)
	}
	for _, e := range endpoints {
		dial := lab.Dialer(l.Node(e.from).NS)
		url := "https://" + e.addr + "/metrics"
		testkit.For(t, time.Minute, e.pod+" serves its metrics to the reader", func() error {
			code, body, err := testenv.Scrape(ctx, dial, url, reader)
			if err != nil {
				return err
			}
			if code != http.StatusOK || !strings.Contains(body, e.metric) {
				return fmt.Errorf("%s: %d %.200s", url, code, body)
			}
			return nil
		})
		for _, c := range []struct {
			who, token string
			want       int
		}{
			{"without a token", "", http.StatusUnauthorized},
			{"as a ServiceAccount without herald-metrics-reader", outsider, http.StatusForbidden},
		} {
			code, body, err := testenv.Scrape(ctx, dial, url, c.token)
			if err != nil || code != c.want || strings.Contains(body, e.metric) {
				t.Errorf("%s %s: %d %v %.200s; want %d and no metrics", url, c.who, code, err, body, c.want)
			}
		}
		if code, body, err := testenv.Scrape(ctx, dial, "http://"+e.addr+"/metrics", reader); err == nil && strings.Contains(body, e.metric) {
			t.Errorf("%s answered plain HTTP with its metrics (%d)", e.addr, code)
		}
		t.Logf("%s: https://%s/metrics answers the reader, refuses no token (401) and another ServiceAccount (403)", e.pod, e.addr)
	}
	for _, n := range l.Nodes {
		if c, err := lab.DialContext(ctx, n.NS, "tcp", "127.0.0.1:"+strconv.Itoa(lab.SpeakerMetricsPort)); err == nil {
			_ = c.Close()
			t.Errorf("%s: the speaker's metrics port is open on loopback, not only on the node address", n.Name)
		}
	}
}

// md5Password is the TCP MD5 password of the FRR sessions in withTCPMD5.
const md5Password = "install-md5"

// withTCPMD5 turns TCP MD5 on for every BGP session with FRR: FRR's
// listen ranges get a password and the samples' BGPPeers (frr, frr-v6)
// a passwordSecret. The speakers set the key on their sockets with only the
// capabilities the DaemonSet ships (NET_RAW): the sessions come up with
// MD5 or not at all, since FRR drops unsigned segments. FRR's default
// configuration is back when the test ends.
func withTCPMD5(t *testing.T, l *lab.Lab) {
	ctx := labtest.Context(t, 2*time.Minute)
	cfg := lab.FRRConfig()
	for i := range cfg.PeerGroups {
		cfg.PeerGroups[i].Password = md5Password
	}
	if err := l.StartFRR(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// t.Context has ended by now.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := l.StartFRR(ctx, lab.FRRConfig()); err != nil {
			t.Errorf("restoring FRR: %v", err)
		}
	})
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "frr-md5"}, StringData: map[string]string{"password": md5Password}}
	if _, err := l.Kube.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, peer := range []string{"frr", "frr-v6"} {
		if out, err := l.Kubectl(ctx, "patch", "bgppeer", peer, "--type=merge", "-p", `{"spec":{"passwordSecret":{"name":"frr-md5"}}}`); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	took := testkit.For(t, time.Minute, "every node's sessions with FRR are up with TCP MD5", func() error {
		nbrs, err := l.FRR.FRR.BGPNeighbors(ctx)
		if err != nil {
			return err
		}
		for _, n := range l.Nodes {
			for _, a := range []netip.Addr{n.IPv4, n.IPv6} {
				nb, ok := nbrs[a]
				switch {
				case !ok:
					return fmt.Errorf("FRR has no session with %s", a)
				case !nb.Established():
					return fmt.Errorf("FRR's session with %s is %s", a, nb.State)
				case nb.AuthenticationEnabled != 1:
					return fmt.Errorf("FRR's session with %s is up without MD5", a)
				}
			}
		}
		return nil
	})
	t.Logf("sessions up with TCP MD5 %v after the peers were given the password", took.Round(time.Millisecond))
}

// passiveOnPort179 adds a passive BGPPeer for BIRD with the default
// listenPort (179, a privileged port) and has BIRD dial every node: the
// speakers must be able to listen there with the capabilities the
// DaemonSet ships. BIRD's default configuration is back when the test ends.
func passiveOnPort179(t *testing.T, l *lab.Lab) {
	ctx := labtest.Context(t, 2*time.Minute)
	base := l.BIRD.BIRD.Config
	cfg := base
	cfg.Neighbors = slices.Clone(base.Neighbors)
	names := map[string]string{}
	for _, n := range l.Nodes {
		name := "dial_" + n.Name
		names[n.Name] = name
		cfg.Neighbors = append(cfg.Neighbors, routers.BIRDNeighbor{Name: name, Address: n.IPv4, ASN: lab.NodeASN,
			ConnectRetry: time.Second, Hold: 9 * time.Second, Keepalive: 3 * time.Second})
	}
	if err := l.BIRD.BIRD.Reconfigure(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := l.BIRD.BIRD.Reconfigure(ctx, base); err != nil {
			t.Errorf("restoring BIRD: %v", err)
		}
	})
	peer := fmt.Sprintf(`{"apiVersion":"herald.dev/v1beta1","kind":"BGPPeer","metadata":{"name":"bird-passive"},`+
		`"spec":{"myASN":%d,"peerASN":%d,"peerAddress":"%s","passive":true,"holdTime":"9s","keepaliveTime":"3s"}}`,
		lab.NodeASN, lab.BIRDASN, l.BIRD.IPv4)
	if err := applyJSON(ctx, l, peer); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = l.Kubectl(ctx, "delete", "bgppeer", "bird-passive", "--ignore-not-found")
	})
	took := testkit.For(t, time.Minute, "BIRD's sessions to every node's port 179 are up", func() error {
		for node, name := range names {
			p, err := l.BIRD.BIRD.Protocol(ctx, name)
			if err != nil {
				return err
			}
			if !p.Established() {
				return fmt.Errorf("BIRD's session to %s: %s %s", node, p.BGPState, p.LastError)
			}
		}
		return nil
	})
	t.Logf("BIRD reached every node on port 179 %v after the passive peer was created", took.Round(time.Millisecond))
}

// applyJSON applies one object given as JSON.
func applyJSON(ctx context.Context, l *lab.Lab, obj string) error {
	f, err := os.CreateTemp("", "herald-install-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) //nolint:errcheck // a temporary file left behind does no harm
	if _, err := f.WriteString(obj); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return l.Apply(ctx, f.Name())
}
