package deploy

import (
	"fmt"
	"path/filepath"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/heraldlb/herald/internal/testenv"
)

// KustomizeDir is config/default in the repository: the whole of Herald
// for `kubectl apply -k`.
func KustomizeDir() (string, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "config", "default"), nil
}

// Kustomize renders a kustomization folder ("" = KustomizeDir()) as
// `kubectl kustomize` does: the single manifest for `kubectl apply -f`.
func Kustomize(dir string) (string, error) {
	if dir == "" {
		var err error
		if dir, err = KustomizeDir(); err != nil {
			return "", err
		}
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return "", fmt.Errorf("deploy: kustomize %s: %w", dir, err)
	}
	out, err := res.AsYaml()
	if err != nil {
		return "", err
	}
	return string(out), nil
}
