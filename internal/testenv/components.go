package testenv

import (
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

const (
	// ServiceCIDRs is the dual-stack ClusterIP range of every Env.
	ServiceCIDRs   = "10.96.0.0/16,fd00:10:96::/112"
	firstServiceIP = "10.96.0.1"
)

// controllers are the kube-controller-manager loops tests and the lab rely on:
// tokens and namespaces, garbage collection, EndpointSlices for Services,
// ServiceCIDRs, and workloads (Deployments, DaemonSets, StatefulSets) so
// ordinary manifests work. Node lifecycle is off: the lab's nodes stay Ready
// until a test says otherwise, and nothing taints or evicts behind its back.
var controllers = []string{
	"serviceaccount-token-controller", "serviceaccount-controller",
	"root-ca-certificate-publisher-controller", "clusterrole-aggregation-controller",
	"namespace-controller", "garbage-collector-controller", "pod-garbage-collector-controller",
	"endpointslice-controller", "endpointslice-mirroring-controller", "service-cidr-controller",
	"deployment-controller", "replicaset-controller", "daemonset-controller", "statefulset-controller",
}

// disabledAdmission are default admission plugins that need parts we do not
// run: ServiceAccount makes Pod creation wait for the namespace's default
// ServiceAccount (lab pods run no containers, so they need no token), and
// TaintNodesByCondition taints new Nodes not-ready until the node lifecycle
// controller, which is off, lifts it.
var disabledAdmission = []string{"ServiceAccount", "TaintNodesByCondition"}

type ports struct{ etcdClient, etcdPeer, apiserver int }

func etcdArgs(dir string, p ports) []string {
	client := "http://127.0.0.1:" + strconv.Itoa(p.etcdClient)
	peer := "http://127.0.0.1:" + strconv.Itoa(p.etcdPeer)
	return []string{
		"--name=default",
		"--data-dir=" + filepath.Join(dir, "etcd"),
		"--listen-client-urls=" + client, "--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer, "--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=default=" + peer,
		// Test data is thrown away: fsync only costs time.
		"--unsafe-no-fsync=true",
		"--log-level=warn",
	}
}

func apiserverArgs(k *pki, p ports, serviceAccounts bool) []string {
	disabled := disabledAdmission
	if serviceAccounts {
		disabled = slices.DeleteFunc(slices.Clone(disabled), func(s string) bool { return s == "ServiceAccount" })
	}
	return []string{
		"--etcd-servers=http://127.0.0.1:" + strconv.Itoa(p.etcdClient),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(p.apiserver),
		"--tls-cert-file=" + k.ServingCert, "--tls-private-key-file=" + k.ServingKey,
		"--client-ca-file=" + k.CACert,
		"--service-account-key-file=" + k.SAPub,
		"--service-account-signing-key-file=" + k.SAKey,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=" + ServiceCIDRs,
		// No apiserver Endpoints for the kubernetes Service: nothing here reaches it
		// through a ClusterIP, and its advertise address is loopback.
		"--endpoint-reconciler-type=none",
		// Fairness queues only slow down a single-tenant test server.
		"--enable-priority-and-fairness=false",
		"--disable-admission-plugins=" + strings.Join(disabled, ","),
		"--allow-privileged=true",
		"--profiling=false",
	}
}

func controllerManagerArgs(k *pki, kubeconfig string) []string {
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--controllers=" + strings.Join(controllers, ","),
		"--service-account-private-key-file=" + k.SAKey,
		"--root-ca-file=" + k.CACert,
		"--use-service-account-credentials=false",
		"--leader-elect=false",
		"--secure-port=0",
		// The default 20 QPS makes EndpointSlices lag far behind in scale tests.
		"--kube-api-qps=200", "--kube-api-burst=400",
	}
}

func schedulerArgs(kubeconfig string) []string {
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
	}
}
