// Command herald-dist makes what Herald ships, without Docker:
//
//	herald-dist images    build the herald-controller and herald-speaker images
//	                      (linux/amd64 and linux/arm64) as OCI archives in dist/images
//	herald-dist push      push them to a registry (all platforms, one index each)
//	herald-dist manifest  render config/default (kustomize) into one manifest,
//	                      dist/herald.yaml, for kubectl apply -f
//
// Image names and the tag come from the chart (values.yaml and Chart.yaml's
// appVersion); config/ names the same images (a test in config/ holds the
// two equal, so the manifest and the chart install the same thing). `make images`,
// `make push` and `make manifest` run it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/heraldlb/herald/internal/deploy"
	"github.com/heraldlb/herald/internal/images"
	"github.com/heraldlb/herald/internal/testenv"
)

const usage = `usage: herald-dist <command> [flags]

commands:
  images    build the images as OCI archives (dist/images/<name>.tar)
  push      push the built images to a registry (--registry)
  manifest  render the chart into one manifest for kubectl apply -f

Run "herald-dist <command> -h" for its flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "images":
		err = buildImages(ctx, args)
	case "push":
		err = push(ctx, args)
	case "manifest":
		err = manifest(args)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "herald-dist: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "herald-dist:", err)
		os.Exit(1)
	}
}

// imageFlags are the flags images and push share.
type imageFlags struct {
	dir, registry, tag string
}

func (f *imageFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&f.dir, "dir", "dist/images", "folder of the image archives")
	fs.StringVar(&f.registry, "registry", "", "registry path the images are named under (default: the chart's, ghcr.io/heraldlb)")
	fs.StringVar(&f.tag, "tag", "", "image tag (default: the chart's appVersion)")
}

// chartImages returns the chart's images, renamed by the flags.
func (f imageFlags) chartImages() ([]deploy.Image, error) {
	ch, err := deploy.LoadChart("")
	if err != nil {
		return nil, err
	}
	imgs, err := deploy.Images(ch)
	if err != nil {
		return nil, err
	}
	for i := range imgs {
		if f.registry != "" {
			imgs[i].Repository = strings.TrimSuffix(f.registry, "/") + "/" + imgs[i].Name()
		}
		if f.tag != "" {
			imgs[i].Tag = f.tag
		}
	}
	return imgs, nil
}

func buildImages(ctx context.Context, args []string) error {
	var f imageFlags
	fs := flag.NewFlagSet("images", flag.ExitOnError)
	f.bind(fs)
	platforms := fs.String("platforms", "linux/amd64,linux/arm64", "comma-separated platforms")
	_ = fs.Parse(args)
	plats, err := images.ParsePlatforms(*platforms)
	if err != nil {
		return err
	}
	imgs, err := f.chartImages()
	if err != nil {
		return err
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		return err
	}
	begin := time.Now()
	for _, img := range imgs {
		spec, ok := specFor(img.Name())
		if !ok {
			return fmt.Errorf("no image spec for %s", img.Name())
		}
		built, err := images.Build(ctx, images.Options{
			ModuleDir: root, Repository: img.Registry(), Tag: img.Tag, Platforms: plats, OutDir: f.dir,
			Labels: map[string]string{
				"org.opencontainers.image.source":  "https://github.com/heraldlb/herald",
				"org.opencontainers.image.version": img.Tag,
				"org.opencontainers.image.title":   img.Name(),
			},
		}, spec)
		if err != nil {
			return err
		}
		for _, b := range built {
			fmt.Printf("%s  %s  %s\n", b.Ref, b.Digest, b.Path)
		}
	}
	fmt.Printf("built %d images for %s in %v\n", len(imgs), *platforms, time.Since(begin).Round(100*time.Millisecond))
	return nil
}

func specFor(name string) (images.Spec, bool) {
	for _, s := range images.Herald {
		if s.Name == name {
			return s, true
		}
	}
	return images.Spec{}, false
}

func push(ctx context.Context, args []string) error {
	var f imageFlags
	fs := flag.NewFlagSet("push", flag.ExitOnError)
	f.bind(fs)
	insecure := fs.Bool("insecure", false, "allow plain HTTP (a registry on localhost)")
	_ = fs.Parse(args)
	if f.registry == "" {
		return errors.New("push needs --registry (make push REGISTRY=registry.example.com/herald)")
	}
	imgs, err := f.chartImages()
	if err != nil {
		return err
	}
	for _, img := range imgs {
		path := filepath.Join(f.dir, img.Name()+".tar")
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("%s: %w (run make images first)", path, err)
		}
		d, err := images.Push(ctx, path, img.Ref(), *insecure)
		if err != nil {
			return err
		}
		fmt.Printf("pushed %s@%s\n", img.Ref(), d)
	}
	return nil
}

func manifest(args []string) error {
	fs := flag.NewFlagSet("manifest", flag.ExitOnError)
	out := fs.String("o", "dist/herald.yaml", "output file (- for stdout)")
	_ = fs.Parse(args)
	doc, err := deploy.Kustomize("")
	if err != nil {
		return err
	}
	if *out == "-" {
		_, err = os.Stdout.WriteString(doc)
		return err
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(*out, []byte(doc), 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote %s: kubectl apply --server-side -f %s\n", *out, *out)
	return nil
}
