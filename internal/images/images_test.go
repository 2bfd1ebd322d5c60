package images

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/heraldlb/herald/internal/testenv"
)

// The echo backend of the lab stands in for a Herald binary: it is built
// the same way and much faster.
var echoSpec = Spec{Name: "lab-echo", Package: "./e2e/lab/cmd/lab-echo", User: "65532:65532", Args: []string{"--tcp=8080"}}

func TestBuildWritesAStaticMultiPlatformImage(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	o := Options{ModuleDir: root, Repository: "example.test/herald", Tag: "v9.9.9", Platforms: Platforms, OutDir: t.TempDir()}
	built, err := Build(ctx, o, echoSpec)
	if err != nil {
		t.Fatal(err)
	}
	if len(built) != 1 || built[0].Ref != "example.test/herald/lab-echo:v9.9.9" || built[0].Path != filepath.Join(o.OutDir, "lab-echo.tar") {
		t.Fatalf("built %+v", built)
	}
	a, err := ReadArchive(built[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close() //nolint:errcheck // a temporary copy
	if a.Ref != built[0].Ref {
		t.Errorf("archive names the image %q, want %q", a.Ref, built[0].Ref)
	}
	if d, _ := a.Index.Digest(); d != built[0].Digest {
		t.Errorf("archive index digest %s, Build reported %s", d, built[0].Digest)
	}
	im, err := a.Index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
	if len(im.Manifests) != len(want) {
		t.Fatalf("index has %d manifests, want %d", len(im.Manifests), len(want))
	}
	for _, d := range im.Manifests {
		if d.Platform == nil || d.Platform.OS != "linux" {
			t.Fatalf("manifest %s has platform %v", d.Digest, d.Platform)
		}
		arch := d.Platform.Architecture
		img, err := a.Index.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Architecture != arch || cf.OS != "linux" || cf.Config.User != "65532:65532" ||
			len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != "/lab-echo" || len(cf.Config.Cmd) != 1 {
			t.Errorf("%s: config %+v / %+v", arch, cf.Config, cf.Platform())
		}
		bin := fileInImage(t, img, "lab-echo")
		f, err := elf.NewFile(bytes.NewReader(bin))
		if err != nil {
			t.Fatalf("%s: /lab-echo is not an ELF file: %v", arch, err)
		}
		if f.Machine != want[arch] {
			t.Errorf("%s: binary is for %v, want %v", arch, f.Machine, want[arch])
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("%s: binary is dynamically linked (%v)", arch, p.Type)
			}
		}
	}

	// The same sources give the same image.
	again, err := Build(ctx, Options{ModuleDir: root, Repository: o.Repository, Tag: o.Tag, Platforms: Platforms, OutDir: t.TempDir()}, echoSpec)
	if err != nil {
		t.Fatal(err)
	}
	if again[0].Digest != built[0].Digest {
		t.Errorf("a second build has digest %s, the first %s", again[0].Digest, built[0].Digest)
	}
}

// fileInImage returns the content of name from the image's only layer,
// which must hold nothing else, owned by root, executable.
func fileInImage(t *testing.T, img v1.Image, name string) []byte {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%d layers (%v), want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close() //nolint:errcheck // read only
	tr := tar.NewReader(rc)
	var content []byte
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Name != name || hdr.Uid != 0 || hdr.Gid != 0 || hdr.Mode&0o111 == 0 || !hdr.ModTime.Equal(time.Unix(0, 0)) {
			t.Fatalf("layer entry %q uid %d gid %d mode %o time %v", hdr.Name, hdr.Uid, hdr.Gid, hdr.Mode, hdr.ModTime)
		}
		if content, err = io.ReadAll(tr); err != nil {
			t.Fatal(err)
		}
	}
	if content == nil {
		t.Fatalf("layer has no %s", name)
	}
	return content
}

func TestParsePlatforms(t *testing.T) {
	p, err := ParsePlatforms("linux/amd64, linux/arm64")
	if err != nil || len(p) != 2 || p[1].Architecture != "arm64" {
		t.Fatalf("got %v, %v", p, err)
	}
	for _, bad := range []string{"", "windows/amd64", "linux"} {
		if _, err := ParsePlatforms(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// The layer's diff ID is the digest of its uncompressed content, which is
// what containerd checks when it unpacks the image.
func TestLayerDiffIDIsTheUncompressedDigest(t *testing.T) {
	l, err := binaryLayer("/x", "images.go")
	if err != nil {
		t.Fatal(err)
	}
	diff, err := l.DiffID()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close() //nolint:errcheck // read only
	h, _, err := v1.SHA256(rc)
	if err != nil || h != diff {
		t.Fatalf("diff ID %s, uncompressed content %s (%v)", diff, h, err)
	}
	if dig, _ := l.Digest(); dig == diff {
		t.Errorf("layer digest equals its diff ID: the blob is not compressed")
	}
}
