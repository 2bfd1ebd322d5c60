package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// KubeVersion is the Kubernetes release hack/build-kube.sh builds.
const KubeVersion = "v1.36.3"

// BinEnv overrides where the Kubernetes binaries are looked up.
const BinEnv = "HERALD_KUBE_BIN"

// ErrNoBinaries means the Kubernetes binaries have not been built yet.
var ErrNoBinaries = errors.New("kubernetes binaries not found: run `make kube` (hack/build-kube.sh)")

// Binaries are the programs the control plane and the lab run.
var Binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "kubectl"}

const modulePath = "github.com/heraldlb/herald"

// RepoRoot finds the Herald checkout: first upwards from the working
// directory (tests run inside the tree, the lab CLI from its root), then from
// this source file's location.
func RepoRoot() (string, error) {
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			if isHeraldRoot(dir) {
				return dir, nil
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		dir := filepath.Dir(filepath.Dir(filepath.Dir(file)))
		if isHeraldRoot(dir) {
			return dir, nil
		}
	}
	return "", errors.New("testenv: cannot find the Herald repository (go.mod of " + modulePath + ") above the working directory")
}

func isHeraldRoot(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	return err == nil && strings.HasPrefix(string(b), "module "+modulePath+"\n")
}

// BinDir returns the directory holding the Kubernetes binaries: $HERALD_KUBE_BIN,
// else the build script's cache in the repository. It fails with ErrNoBinaries
// when one is missing.
func BinDir() (string, error) {
	dir := os.Getenv(BinEnv)
	if dir == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", fmt.Errorf("%w (%w)", ErrNoBinaries, err)
		}
		dir = filepath.Join(root, ".cache", "kube", KubeVersion, "bin")
	}
	if err := checkBinaries(dir); err != nil {
		return "", err
	}
	return dir, nil
}

func checkBinaries(dir string) error {
	var missing []string
	for _, b := range Binaries {
		if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.Mode()&0o111 == 0 {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: missing %s in %s", ErrNoBinaries, strings.Join(missing, ", "), dir)
	}
	return nil
}
