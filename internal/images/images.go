// Package images builds Herald's container images without Docker: each is a
// static Go binary in one layer on an empty base, for several platforms,
// written as an OCI image layout in a tar file that containerd (`ctr images
// import`), kind (`kind load image-archive`) and registries (Push) take.
//
// Everything is deterministic: the layer's files carry no time stamps and
// the image config a fixed creation time, so the same sources give the same
// digests.
package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Spec is one image: a Go package built into a static binary that is the
// image's entrypoint.
type Spec struct {
	// Name is the image name without registry or tag ("herald-speaker").
	Name string
	// Package is the Go package to build, relative to the module root ("./speaker").
	Package string
	// User is the image's default user as uid:gid ("65532:65532"); the pod's
	// securityContext may still override it.
	User string
	// Args are default arguments after the entrypoint.
	Args []string
	// Env holds extra "KEY=value" settings of the image config.
	Env []string
}

// Herald's two images. The controller needs no privilege at all and runs as
// a non-root user; the speaker runs as root because the capabilities its
// DaemonSet grants (NET_RAW, NET_ADMIN) only reach a root process when the
// binary carries no file capabilities.
var (
	Controller = Spec{Name: "herald-controller", Package: "./controller", User: "65532:65532"}
	Speaker    = Spec{Name: "herald-speaker", Package: "./speaker", User: "0:0"}
	Herald     = []Spec{Controller, Speaker}
)

// Platforms Herald is built for by default: x86 servers and ARM (Raspberry
// Pi, ARM servers).
var Platforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}

// HostPlatform is the platform of the machine running this code.
func HostPlatform() v1.Platform { return v1.Platform{OS: "linux", Architecture: runtime.GOARCH} }

// ParsePlatforms reads "linux/amd64,linux/arm64".
func ParsePlatforms(s string) ([]v1.Platform, error) {
	var out []v1.Platform
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := v1.ParsePlatform(f)
		if err != nil {
			return nil, fmt.Errorf("images: platform %q: %w", f, err)
		}
		if p.OS != "linux" || p.Architecture == "" {
			return nil, fmt.Errorf("images: platform %q: only linux/<arch> is built", f)
		}
		out = append(out, *p)
	}
	if len(out) == 0 {
		return nil, errors.New("images: no platform given")
	}
	return out, nil
}

// Options say where the sources are and what to write.
type Options struct {
	// ModuleDir is the Go module the packages are built from.
	ModuleDir string
	// Repository is the registry path the images are named under
	// ("ghcr.io/heraldlb"); Tag their tag ("v0.1.0").
	Repository, Tag string
	Platforms       []v1.Platform
	// OutDir receives <Name>.tar per image.
	OutDir string
	// Labels are added to every image config (source, version, ...).
	Labels map[string]string
}

// Ref is the full reference of an image: <Repository>/<name>:<Tag>.
func (o Options) Ref(name string) string {
	return strings.TrimSuffix(o.Repository, "/") + "/" + name + ":" + o.Tag
}

// Built is one image written by Build.
type Built struct {
	Spec Spec
	Ref  string
	// Path is the OCI layout tar file.
	Path string
	// Digest is the digest of the multi-platform image index.
	Digest v1.Hash
}

// created is the fixed creation time of every image config (reproducible builds).
var created = v1.Time{Time: time.Unix(0, 0).UTC()}

// Build compiles each spec for every platform and writes one OCI layout
// tar file per spec into o.OutDir.
func Build(ctx context.Context, o Options, specs ...Spec) ([]Built, error) {
	if o.Repository == "" || o.Tag == "" {
		return nil, errors.New("images: repository and tag are required")
	}
	if len(o.Platforms) == 0 {
		o.Platforms = Platforms
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(o.OutDir, ".build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work) //nolint:errcheck // scratch space: a leftover does no harm
	var out []Built
	for _, s := range specs {
		idx, err := buildIndex(ctx, o, s, work)
		if err != nil {
			return nil, err
		}
		b := Built{Spec: s, Ref: o.Ref(s.Name), Path: filepath.Join(o.OutDir, s.Name+".tar")}
		if b.Digest, err = idx.Digest(); err != nil {
			return nil, err
		}
		if err := WriteArchive(b.Path, b.Ref, idx); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// buildIndex builds s for every platform and returns the image index.
func buildIndex(ctx context.Context, o Options, s Spec, work string) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range o.Platforms {
		bin := filepath.Join(work, s.Name+"-"+p.OS+"-"+p.Architecture)
		if err := goBuild(ctx, o.ModuleDir, s.Package, bin, p); err != nil {
			return nil, err
		}
		img, err := imageFor(s, p, bin, o.Labels)
		if err != nil {
			return nil, fmt.Errorf("images: %s for %s: %w", s.Name, p, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}},
		})
	}
	return idx, nil
}

// goBuild compiles a static, stripped binary for platform p.
func goBuild(ctx context.Context, moduleDir, pkg, out string, p v1.Platform) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
	if p.Architecture == "arm" && p.Variant != "" {
		cmd.Env = append(cmd.Env, "GOARM="+strings.TrimPrefix(p.Variant, "v"))
	}
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("images: go build %s for %s: %w\n%s", pkg, p, err, msg)
	}
	return nil
}

// imageFor makes a single-layer OCI image holding the binary at /<name>.
func imageFor(s Spec, p v1.Platform, bin string, labels map[string]string) (v1.Image, error) {
	layer, err := binaryLayer("/"+s.Name, bin)
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	if img, err = mutate.AppendLayers(img, layer); err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Created = created
	cf.Config.Entrypoint = []string{"/" + s.Name}
	cf.Config.Cmd = s.Args
	cf.Config.User = s.User
	cf.Config.Env = append([]string{"PATH=/"}, s.Env...)
	cf.Config.Labels = labels
	return mutate.ConfigFile(img, cf)
}

// binaryLayer is a gzip-compressed layer with one executable file, owned by
// root and without a time stamp.
func binaryLayer(path, bin string) (v1.Layer, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{
		Name: strings.TrimPrefix(path, "/"), Mode: 0o755, Size: int64(len(data)),
		Typeflag: tar.TypeReg, Format: tar.FormatPAX, ModTime: time.Unix(0, 0),
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, err
	}
	if _, err := tw.Write(data); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return compressed(buf.Bytes())
}

// compressed makes an OCI layer (gzip) of an uncompressed tar; the layer
// knows both digests, the blob's and the content's (diff ID).
func compressed(b []byte) (v1.Layer, error) {
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer), tarball.WithCompressionLevel(gzip.BestCompression))
}

// Annotations naming an image in an OCI layout: containerd's import reads
// the first (a full reference), the OCI spec defines the second (the tag).
const (
	annotationContainerdName = "io.containerd.image.name"
	annotationRefName        = "org.opencontainers.image.ref.name"
)

// WriteArchive writes idx as an OCI image layout, named ref, into a tar file.
func WriteArchive(path, ref string, idx v1.ImageIndex) error {
	dir, err := os.MkdirTemp(filepath.Dir(path), ".layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir) //nolint:errcheck // scratch space: a leftover does no harm
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	tag := ref[strings.LastIndex(ref, ":")+1:]
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{annotationContainerdName: ref, annotationRefName: tag})); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := tarDir(dir, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// tarDir writes the files under dir into a tar file at out, in a fixed order.
func tarDir(dir, out string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name, hdr.ModTime, hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = filepath.ToSlash(rel), time.Unix(0, 0), 0, 0, "", ""
		if d.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close() //nolint:errcheck // read only
		_, err = io.Copy(tw, src)
		return err
	})
	if cerr := tw.Close(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
