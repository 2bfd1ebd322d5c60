package testenv

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// Kubectl runs kubectl with the admin kubeconfig and returns its output.
func (e *Env) Kubectl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(e.BinDir, "kubectl"), append([]string{"--kubeconfig", e.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// ServiceAccountToken returns a token the API server issued (TokenRequest,
// one hour) for the ServiceAccount ns/name, creating the namespace and the
// ServiceAccount when missing. With clusterRole, a ClusterRoleBinding named
// like the ServiceAccount grants it that role (the role need not exist yet:
// an install may bring it). This is how a Prometheus in the cluster
// authenticates to Herald's metrics endpoints.
func (e *Env) ServiceAccountToken(ctx context.Context, ns, name, clusterRole string) (string, error) {
	cs, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return "", err
	}
	create := func(what string, err error) error {
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("testenv: create %s: %w", what, err)
		}
		return nil
	}
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err := create("namespace "+ns, err); err != nil {
		return "", err
	}
	_, err = cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err := create("ServiceAccount "+ns+"/"+name, err); err != nil {
		return "", err
	}
	if clusterRole != "" {
		_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: ns + "-" + name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}},
		}, metav1.CreateOptions{})
		if err := create("ClusterRoleBinding "+ns+"-"+name, err); err != nil {
			return "", err
		}
	}
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("testenv: token for %s/%s: %w", ns, name, err)
	}
	return tr.Status.Token, nil
}

// Dialer opens connections; nil dials from the host's own network.
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// Scrape sends GET url as a Prometheus does, with token as bearer (none if
// empty), trusting any certificate (Herald's default one is self-signed,
// so a ServiceMonitor sets insecureSkipVerify). It returns the status code
// and the body.
func Scrape(ctx context.Context, dial Dialer, url, token string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // a test client, as Prometheus with insecureSkipVerify
		DisableKeepAlives: true,
		Proxy:             nil,
	}
	if dial != nil {
		tr.DialContext = dial
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close() //nolint:errcheck // read only
	// The status is returned also when reading the body fails.
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}
