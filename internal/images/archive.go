package images

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Archive is an image read back from a file Build wrote.
type Archive struct {
	// Ref is the name the image was built under.
	Ref   string
	Index v1.ImageIndex
	dir   string
}

// Close removes the unpacked copy.
func (a *Archive) Close() error { return os.RemoveAll(a.dir) }

// ReadArchive unpacks an OCI layout tar file written by Build or
// WriteArchive and returns its one image index. Close removes the copy.
func ReadArchive(path string) (_ *Archive, err error) {
	dir, err := os.MkdirTemp("", "herald-image-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	if err := untar(path, dir); err != nil {
		return nil, fmt.Errorf("images: unpack %s: %w", path, err)
	}
	outer, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("images: %s is not an OCI image layout: %w", path, err)
	}
	im, err := outer.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(im.Manifests) != 1 || !im.Manifests[0].MediaType.IsIndex() {
		return nil, fmt.Errorf("images: %s holds %d entries, want one image index", path, len(im.Manifests))
	}
	d := im.Manifests[0]
	idx, err := outer.ImageIndex(d.Digest)
	if err != nil {
		return nil, err
	}
	return &Archive{Ref: d.Annotations[annotationContainerdName], Index: idx, dir: dir}, nil
}

// untar unpacks regular files and folders of a tar file (as WriteArchive
// writes them) under dir, refusing names that leave it.
func untar(path, dir string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close() //nolint:errcheck // read only
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		target := filepath.Join(dir, filepath.FromSlash(hdr.Name))
		if !strings.HasPrefix(target, filepath.Clean(dir)+string(os.PathSeparator)) {
			return fmt.Errorf("entry %q leaves the folder", hdr.Name)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("entry %q: unexpected type %c", hdr.Name, hdr.Typeflag)
		}
	}
}

// Push uploads the image in the archive at path to ref (all platforms, as
// one index), with the credentials of the Docker config (~/.docker/config.json).
// insecure allows plain HTTP, for a registry on localhost.
func Push(ctx context.Context, path, ref string, insecure bool) (v1.Hash, error) {
	a, err := ReadArchive(path)
	if err != nil {
		return v1.Hash{}, err
	}
	defer a.Close() //nolint:errcheck // removes a temporary copy: a leftover does no harm
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("images: reference %q: %w", ref, err)
	}
	if err := remote.WriteIndex(r, a.Index, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return v1.Hash{}, fmt.Errorf("images: push %s: %w", ref, err)
	}
	return a.Index.Digest()
}

// Relabel writes the image in the archive at src as a new image named ref
// into dst, with labels added to every platform's config: a new image (new
// digests) from the same binaries, for a rolling update.
func Relabel(src, dst, ref string, labels map[string]string) (v1.Hash, error) {
	a, err := ReadArchive(src)
	if err != nil {
		return v1.Hash{}, err
	}
	defer a.Close() //nolint:errcheck // as in Push
	im, err := a.Index.IndexManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, d := range im.Manifests {
		img, err := a.Index.Image(d.Digest)
		if err != nil {
			return v1.Hash{}, err
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return v1.Hash{}, err
		}
		cf = cf.DeepCopy()
		if cf.Config.Labels == nil {
			cf.Config.Labels = map[string]string{}
		}
		for k, v := range labels {
			cf.Config.Labels[k] = v
		}
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			return v1.Hash{}, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: d.Platform}})
	}
	if err := WriteArchive(dst, ref, idx); err != nil {
		return v1.Hash{}, err
	}
	return idx.Digest()
}
