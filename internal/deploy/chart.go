// Package deploy is how Herald is installed: its Helm chart (charts/herald),
// loaded with the Helm v4 library to render, lint, install, upgrade and
// uninstall it, and its kustomize entry (config/default), rendered with the
// kustomize library into the single manifest for kubectl apply -f. The image
// names (herald-dist images), the drift test between the chart and config/
// and the install suite all go through here.
package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/kube"
	release "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/strvals"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/heraldlb/herald/internal/testenv"
)

// Namespace is the only namespace the chart installs into.
const Namespace = "herald-system"

// ReleaseName is the release name the docs and tests use.
const ReleaseName = "herald"

// ChartDir is charts/herald in the repository.
func ChartDir() (string, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "charts", "herald"), nil
}

// LoadChart reads the chart in dir ("" = ChartDir()).
func LoadChart(dir string) (*chart.Chart, error) {
	if dir == "" {
		var err error
		if dir, err = ChartDir(); err != nil {
			return nil, err
		}
	}
	ch, err := loader.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("deploy: load %s: %w", dir, err)
	}
	return ch, nil
}

// Values parses --set style assignments ("speaker.image.tag=v2") into a
// values map for RenderChart and Install.
func Values(set ...string) (map[string]any, error) {
	vals := map[string]any{}
	for _, s := range set {
		if err := strvals.ParseInto(s, vals); err != nil {
			return nil, fmt.Errorf("deploy: value %q: %w", s, err)
		}
	}
	return vals, nil
}

// Image is one of the chart's images with the values given.
type Image struct {
	// Component is "controller" or "speaker"; Repository and Tag make Ref.
	Component, Repository, Tag string
}

// Ref is repository:tag.
func (i Image) Ref() string { return i.Repository + ":" + i.Tag }

// Name is the last element of the repository ("herald-speaker").
func (i Image) Name() string { return i.Repository[strings.LastIndex(i.Repository, "/")+1:] }

// Registry is the repository without the image name ("ghcr.io/heraldlb").
func (i Image) Registry() string {
	if k := strings.LastIndex(i.Repository, "/"); k >= 0 {
		return i.Repository[:k]
	}
	return ""
}

// Images returns the controller's and the speaker's image as the chart's
// values.yaml and appVersion name them: the one place image names and tags
// come from (make images, make push and the manifests).
func Images(ch *chart.Chart) ([]Image, error) {
	var out []Image
	for _, c := range []string{"controller", "speaker"} {
		comp, _ := ch.Values[c].(map[string]any)
		img, _ := comp["image"].(map[string]any)
		repo, _ := img["repository"].(string)
		tag, _ := img["tag"].(string)
		if repo == "" {
			return nil, fmt.Errorf("deploy: values.yaml has no %s.image.repository", c)
		}
		if tag == "" {
			tag = ch.Metadata.AppVersion
		}
		out = append(out, Image{Component: c, Repository: repo, Tag: tag})
	}
	return out, nil
}

func quietConfig() *action.Configuration {
	return action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler))
}

// RenderChart renders the chart as `helm template -n herald-system` does
// for the Kubernetes version Herald is tested with, with the CRDs first
// when crds is set.
func RenderChart(ch *chart.Chart, values map[string]any, crds bool) (string, error) {
	in := action.NewInstall(quietConfig())
	in.DryRunStrategy = action.DryRunClient
	in.Replace = true
	in.ReleaseName = ReleaseName
	in.Namespace = Namespace
	in.IncludeCRDs = crds
	kv, err := common.ParseKubeVersion(testenv.KubeVersion)
	if err != nil {
		return "", err
	}
	in.KubeVersion = kv
	rel, err := in.RunWithContext(context.Background(), ch, values)
	if err != nil {
		return "", fmt.Errorf("deploy: render: %w", err)
	}
	r, ok := rel.(*release.Release)
	if !ok {
		return "", errors.New("deploy: render returned no release")
	}
	return r.Manifest, nil
}

// LintChart runs `helm lint --strict` on the chart in dir with values and
// returns every message of warning severity or worse.
func LintChart(dir string, values map[string]any) []error {
	l := action.NewLint()
	l.Strict = true
	l.Namespace = Namespace
	res := l.Run([]string{dir}, values)
	return res.Errors
}

// Client installs, upgrades and uninstalls the chart in one cluster.
type Client struct {
	cfg        *action.Configuration
	kubeconfig string
}

// NewClient talks to the cluster of a kubeconfig file. It does no I/O.
func NewClient(kubeconfig string, log *slog.Logger) (*Client, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ns := Namespace
	flags := &genericclioptions.ConfigFlags{KubeConfig: &kubeconfig, Namespace: &ns}
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(log.Handler()))
	if err := cfg.Init(flags, ns, "secret"); err != nil {
		return nil, fmt.Errorf("deploy: %w", err)
	}
	return &Client{cfg: cfg, kubeconfig: kubeconfig}, nil
}

// Install installs the chart as release "herald" in herald-system (which
// it creates) and, with wait, waits until its workloads are ready.
func (c *Client) Install(ctx context.Context, ch *chart.Chart, values map[string]any, wait time.Duration) error {
	in := action.NewInstall(c.cfg)
	in.ReleaseName = ReleaseName
	in.Namespace = Namespace
	in.CreateNamespace = true
	in.WaitStrategy, in.Timeout = waitStrategy(wait)
	if _, err := in.RunWithContext(ctx, ch, values); err != nil {
		return fmt.Errorf("deploy: install: %w", err)
	}
	return nil
}

// Upgrade moves the release to values (all of them: nothing is reused).
func (c *Client) Upgrade(ctx context.Context, ch *chart.Chart, values map[string]any, wait time.Duration) error {
	up := action.NewUpgrade(c.cfg)
	up.Namespace = Namespace
	up.WaitStrategy, up.Timeout = waitStrategy(wait)
	if _, err := up.RunWithContext(ctx, ReleaseName, ch, values); err != nil {
		return fmt.Errorf("deploy: upgrade: %w", err)
	}
	return nil
}

// Uninstall removes the release and waits until its objects are gone.
func (c *Client) Uninstall(wait time.Duration) error {
	un := action.NewUninstall(c.cfg)
	un.WaitStrategy, un.Timeout = waitStrategy(wait)
	if _, err := un.Run(ReleaseName); err != nil {
		return fmt.Errorf("deploy: uninstall: %w", err)
	}
	return nil
}

func waitStrategy(wait time.Duration) (kube.WaitStrategy, time.Duration) {
	if wait <= 0 {
		return kube.HookOnlyStrategy, 5 * time.Minute
	}
	return kube.StatusWatcherStrategy, wait
}
