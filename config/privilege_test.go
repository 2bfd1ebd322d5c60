package manifests_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/heraldlb/herald/internal/deploy"
)

// grant is one line of what a role may do: a resource (resource.group, as
// kubectl names it; a non-resource URL as is), its verbs, and why Herald
// needs them.
type grant struct {
	resource, verbs, why string
}

// leastPrivilege is every right Herald's roles give, with the reason. The
// roles must match it exactly: a new verb fails TestLeastPrivilege until it
// is added here with its reason. get, list and watch go together: the
// informers list and watch, and get reveals nothing list does not.
var leastPrivilege = map[string][]grant{
	"ClusterRole herald-controller": {
		{"services", "get list watch", "the Services to assign (informer)"},
		{"services/status", "update", "writes status.loadBalancer.ingress"},
		{"namespaces", "get list watch", "namespace labels select pools"},
		{"nodes", "get list watch", "BGP peers' node selectors in the config model"},
		{"events", "create", "leader election records core Events"},
		{"events.events.k8s.io", "create", "Herald's Events (never patched: each one is new)"},
		{"ippools.herald.dev", "get list watch", "config"},
		{"l2advertisements.herald.dev", "get list watch", "config"},
		{"bgpadvertisements.herald.dev", "get list watch", "config"},
		{"bgppeers.herald.dev", "get list watch", "config"},
		{"bfdprofiles.herald.dev", "get list watch", "config"},
		{"ippools.herald.dev/status", "update", "config object status"},
		{"l2advertisements.herald.dev/status", "update", "config object status"},
		{"bgpadvertisements.herald.dev/status", "update", "config object status"},
		{"bgppeers.herald.dev/status", "update", "config object status"},
		{"bfdprofiles.herald.dev/status", "update", "config object status"},
		{"tokenreviews.authentication.k8s.io", "create", "the metrics endpoint authenticates its callers"},
		{"subjectaccessreviews.authorization.k8s.io", "create", "the metrics endpoint authorizes its callers"},
	},
	"Role herald-system/herald-controller": {
		{"secrets", "get list watch create", "creates the memberlist key; reads BGP passwords for the config model"},
		{"leases.coordination.k8s.io", "get create update", "leader election (one Lease)"},
	},
	"ClusterRole herald-speaker": {
		{"services", "get list watch", "the Services to announce (informer)"},
		{"nodes", "get list watch", "node labels and addresses"},
		{"endpointslices.discovery.k8s.io", "get list watch", "externalTrafficPolicy: Local"},
		{"events.events.k8s.io", "create", "Herald's Events (never patched: each one is new)"},
		{"ippools.herald.dev", "get list watch", "config"},
		{"l2advertisements.herald.dev", "get list watch", "config"},
		{"bgpadvertisements.herald.dev", "get list watch", "config"},
		{"bgppeers.herald.dev", "get list watch", "config"},
		{"bfdprofiles.herald.dev", "get list watch", "config"},
		{"speakerstatuses.herald.dev", "get create", "its own SpeakerStatus, read once and created when missing"},
		{"speakerstatuses.herald.dev/status", "update", "what it announces"},
		{"announcementslices.herald.dev", "get list create update delete", "its own AnnouncementSlices (written whole, re-read on a conflict), and the slices of speakers gone for good (the janitor)"},
		{"tokenreviews.authentication.k8s.io", "create", "the metrics endpoint authenticates its callers"},
		{"subjectaccessreviews.authorization.k8s.io", "create", "the metrics endpoint authorizes its callers"},
	},
	"Role herald-system/herald-speaker": {
		{"secrets", "get list watch", "memberlist key and BGP passwords"},
		{"leases.coordination.k8s.io", "get list watch create update delete", "its own presence Lease (deleted on a clean stop) and the others'"},
	},
	"ClusterRole herald-metrics-reader": {
		{"/metrics", "get", "what a Prometheus needs to scrape both components"},
	},
}

// grantsOf flattens RBAC rules to "resource verb" lines.
func grantsOf(rules []rbacv1.PolicyRule) []string {
	var out []string
	for _, r := range rules {
		for _, verb := range r.Verbs {
			for _, url := range r.NonResourceURLs {
				out = append(out, url+" "+verb)
			}
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					name := res
					if g != "" {
						base, sub, _ := strings.Cut(res, "/")
						name = base + "." + g
						if sub != "" {
							name += "/" + sub
						}
					}
					out = append(out, name+" "+verb)
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func wantGrants(gs []grant) []string {
	var out []string
	for _, g := range gs {
		for _, v := range strings.Fields(g.verbs) {
			out = append(out, g.resource+" "+v)
		}
	}
	slices.Sort(out)
	return out
}

// shipped renders config/default (the chart renders the same objects:
// TestChartAndKustomizeInstallTheSameObjects) into typed objects.
func shipped(t *testing.T) (roles map[string][]rbacv1.PolicyRule, ds *appsv1.DaemonSet, dep *appsv1.Deployment) {
	t.Helper()
	out, err := deploy.Kustomize("")
	if err != nil {
		t.Fatal(err)
	}
	roles = map[string][]rbacv1.PolicyRule{}
	for key, obj := range objects(t, out) {
		b, err := yaml.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		kind, _, _ := strings.Cut(key, " ")
		switch kind {
		case "ClusterRole", "Role":
			var r rbacv1.ClusterRole // a Role has the same fields
			if err := yaml.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			name := kind + " " + r.Name
			if kind == "Role" {
				name = kind + " " + r.Namespace + "/" + r.Name
			}
			roles[name] = r.Rules
		case "DaemonSet":
			ds = &appsv1.DaemonSet{}
			if err := yaml.Unmarshal(b, ds); err != nil {
				t.Fatal(err)
			}
		case "Deployment":
			dep = &appsv1.Deployment{}
			if err := yaml.Unmarshal(b, dep); err != nil {
				t.Fatal(err)
			}
		}
	}
	if ds == nil || dep == nil {
		t.Fatal("config/default renders no DaemonSet or no Deployment")
	}
	return roles, ds, dep
}

// TestLeastPrivilege holds the shipped RBAC to the table above, verb by
// verb, and the pods to their security contexts: the speaker holds only
// NET_RAW and NET_BIND_SERVICE, the controller nothing.
func TestLeastPrivilege(t *testing.T) {
	roles, ds, dep := shipped(t)

	t.Run("roles grant exactly the listed verbs", func(t *testing.T) {
		for name, want := range leastPrivilege {
			rules, ok := roles[name]
			if !ok {
				t.Errorf("no %s in config/default", name)
				continue
			}
			got, wantLines := grantsOf(rules), wantGrants(want)
			for _, g := range got {
				if !slices.Contains(wantLines, g) {
					t.Errorf("%s grants %q, which nothing in the table needs: drop it, or add it to leastPrivilege with the reason", name, g)
				}
			}
			for _, w := range wantLines {
				if !slices.Contains(got, w) {
					t.Errorf("%s lacks %q, which the table says Herald uses", name, w)
				}
			}
		}
		for name := range roles {
			if _, ok := leastPrivilege[name]; !ok {
				t.Errorf("%s is not in the table", name)
			}
		}
	})

	t.Run("no wildcards, no Secrets cluster-wide", func(t *testing.T) {
		for name, rules := range roles {
			for _, g := range grantsOf(rules) {
				if strings.Contains(g, "*") {
					t.Errorf("%s grants a wildcard: %q", name, g)
				}
				if strings.HasPrefix(name, "ClusterRole ") && strings.HasPrefix(g, "secrets ") {
					t.Errorf("%s grants %q in every namespace; Secrets belong in the herald-system Role", name, g)
				}
			}
		}
	})

	t.Run("the speaker holds NET_RAW and NET_BIND_SERVICE only and is not privileged", func(t *testing.T) {
		spec := ds.Spec.Template.Spec
		if !spec.HostNetwork {
			t.Error("the speaker must use the host network")
		}
		sc := spec.Containers[0].SecurityContext
		if sc == nil || sc.Capabilities == nil {
			t.Fatal("the speaker has no securityContext capabilities")
		}
		if sc.Privileged == nil || *sc.Privileged {
			t.Error("the speaker must say privileged: false")
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Error("the speaker must say allowPrivilegeEscalation: false")
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Error("the speaker's root file system must be read-only")
		}
		// NET_RAW: ARP and NDP on raw sockets. NET_BIND_SERVICE: passive
		// BGP peers on port 179. NET_ADMIN is not needed (TCP MD5 takes no
		// capability): docs/decisions.md.
		if add, drop := fmt.Sprint(sc.Capabilities.Add), fmt.Sprint(sc.Capabilities.Drop); add != "[NET_RAW NET_BIND_SERVICE]" || drop != "[ALL]" {
			t.Errorf("capabilities add %s drop %s, want add [NET_RAW NET_BIND_SERVICE] drop [ALL] (docs/decisions.md says why each)", add, drop)
		}
	})

	t.Run("the controller holds no capability and runs as non-root", func(t *testing.T) {
		spec := dep.Spec.Template.Spec
		if spec.HostNetwork {
			t.Error("the controller must not use the host network")
		}
		if spec.SecurityContext == nil || spec.SecurityContext.RunAsNonRoot == nil || !*spec.SecurityContext.RunAsNonRoot {
			t.Error("the controller must run as non-root")
		}
		sc := spec.Containers[0].SecurityContext
		if sc == nil || sc.Capabilities == nil || len(sc.Capabilities.Add) > 0 || fmt.Sprint(sc.Capabilities.Drop) != "[ALL]" {
			t.Errorf("the controller's capabilities: %+v, want drop [ALL] and nothing added", sc)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Error("the controller must say allowPrivilegeEscalation: false")
		}
	})

	t.Run("metrics are served securely and the speaker's on its node address", func(t *testing.T) {
		for _, c := range []corev1.Container{ds.Spec.Template.Spec.Containers[0], dep.Spec.Template.Spec.Containers[0]} {
			for _, arg := range c.Args {
				if strings.HasPrefix(arg, "--metrics-secure") {
					t.Errorf("%s: %s; the shipped default is HTTPS with authentication", c.Name, arg)
				}
			}
		}
		// A host-less address makes the speaker bind its node address
		// (speaker --metrics-bind-address), not every address of the host.
		if args := ds.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--metrics-bind-address=:7473") {
			t.Errorf("speaker args %v, want --metrics-bind-address=:7473", args)
		}
	})
}
