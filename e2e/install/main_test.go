// Package install_test installs Herald the way users do, on real kubelet
// nodes (containerd and runc in the lab's node namespaces): from its images
// (make images), with the Helm chart and with kubectl apply -k
// config/default, nothing started by hand. It checks what a user would:
// the controller's replicas elect a leader and hand over, the speakers run
// with exactly the shipped security context and announce over ARP, NDP and
// BGP, a rolling update of the speakers loses no request, and uninstalling
// leaves nothing behind.
package install_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/internal/deploy"
	"github.com/heraldlb/herald/internal/images"
	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/testenv"
)

// ImagesEnv names a folder of image archives from `make images` (make test
// sets it); without it the suite builds the images for this machine itself,
// the same way.
const ImagesEnv = "HERALD_IMAGES"

// rollTag is the speaker image the rolling update moves to: the same
// binaries under a new tag and a new digest.
const rollTag = "v0.1.0-roll"

var (
	heraldImages []deploy.Image // the chart's images, as loaded into the nodes
	rollImage    string         // the speaker image of the rolling update
)

func TestMain(m *testing.M) {
	var opts lab.Options
	var dir string // the images, removed at the end
	if netns.RequireRoot() == nil {
		var err error
		dir, err = os.MkdirTemp("", "herald-install-images-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		paths, err := prepareImages(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "install: images:", err)
			os.Exit(1)
		}
		opts = lab.Options{Kubelet: true, Images: paths}
	}
	code := labtest.Main(m, opts)
	if dir != "" {
		// Not deferred: os.Exit runs no deferred calls.
		_ = os.RemoveAll(dir)
	}
	os.Exit(code)
}

// prepareImages returns the archives to load into every node: Herald's
// two images and the speaker image for the rolling update.
func prepareImages(work string) ([]string, error) {
	ch, err := deploy.LoadChart("")
	if err != nil {
		return nil, err
	}
	if heraldImages, err = deploy.Images(ch); err != nil {
		return nil, err
	}
	dir := os.Getenv(ImagesEnv)
	if dir == "" {
		root, err := testenv.RepoRoot()
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		dir = filepath.Join(work, "images")
		for _, img := range heraldImages {
			spec := images.Controller
			if img.Component == "speaker" {
				spec = images.Speaker
			}
			if _, err := images.Build(ctx, images.Options{ModuleDir: root, Repository: img.Registry(), Tag: img.Tag,
				Platforms: []v1.Platform{images.HostPlatform()}, OutDir: dir}, spec); err != nil {
				return nil, err
			}
		}
	}
	var paths []string
	for _, img := range heraldImages {
		p := filepath.Join(dir, img.Name()+".tar")
		a, err := images.ReadArchive(p)
		if err != nil {
			return nil, fmt.Errorf("%w (run make images, or unset %s)", err, ImagesEnv)
		}
		ref := a.Ref
		_ = a.Close()
		if ref != img.Ref() {
			return nil, fmt.Errorf("%s holds %s, the chart names %s (run make images)", p, ref, img.Ref())
		}
		paths = append(paths, p)
		if img.Component == "speaker" {
			rollImage = img.Repository + ":" + rollTag
			roll := filepath.Join(work, "speaker-roll.tar")
			if _, err := images.Relabel(p, roll, rollImage, map[string]string{"dev.herald.lab/rolled": "true"}); err != nil {
				return nil, err
			}
			paths = append(paths, roll)
		}
	}
	return paths, nil
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
