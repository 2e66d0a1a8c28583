package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/raftlab/raftlab/internal/cliusage"
)

// description is the head of mkimage --help.
const description = `mkimage writes a one-layer FROM-scratch container image holding one static
binary (mode 0755, at --entrypoint) and an empty /tmp, as a docker-archive
tarball that "ctr -n k8s.io images import", "docker load" and
"kind load image-archive" accept. No Docker, Dockerfile or registry needed.`

// listFlag is a repeatable string flag (--env K=V --env K2=V2).
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// options are mkimage's flags.
type options struct {
	binary, name, out, entrypoint string
	env, args                     listFlag
}

func newFlagSet() (*flag.FlagSet, *options) {
	o := &options{}
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.binary, "binary", "", "static binary `file` to put in the image (CGO_ENABLED=0)")
	fs.StringVar(&o.name, "name", "", "image `reference`, e.g. localhost/raft-kv:dev")
	fs.StringVar(&o.out, "out", "", "output `file` (docker-archive .tar)")
	fs.StringVar(&o.entrypoint, "entrypoint", "", "absolute `path` of the binary in the image, and the entrypoint")
	fs.Var(&o.env, "env", "`K=V` in the image's environment (repeatable)")
	fs.Var(&o.args, "arg", "default `argument` after the entrypoint, the image's Cmd (repeatable)")
	return fs, o
}

// defaultNotes describe defaults that are empty or computed.
var defaultNotes = map[string]string{
	"binary":     "none (required)",
	"name":       "none (required)",
	"out":        "none (required)",
	"entrypoint": "/ + the binary's file name",
	"env":        "none",
	"arg":        "none",
}

func usage(w io.Writer) {
	fs, _ := newFlagSet()
	fmt.Fprintf(w, "%s\n\nUsage:\n  mkimage --binary FILE --name REF --out FILE.tar [--entrypoint /PATH] [--env K=V]... [--arg A]...\n\n"+
		"Example:\n  CGO_ENABLED=0 go build -o bin/raft-kv ./cmd/raft-kv\n"+
		"  mkimage --binary bin/raft-kv --name localhost/raft-kv:dev --out bin/images/raft-kv.tar\n\n"+
		"Exit codes: 0 written (or --help), 1 the build failed, 2 bad flags.\n\nFlags:\n", description)
	cliusage.PrintFlags(w, fs, "--", defaultNotes)
}

// parse reads the command line; done reports the command is over (help
// printed, or bad flags reported) with exit code code.
func parse(args []string, stdout, stderr io.Writer) (o *options, code int, done bool) {
	fs, o := newFlagSet()
	if code, done := cliusage.Parse(fs, args, "mkimage", "--help", usage, stdout, stderr); done {
		return nil, code, true
	}
	var missing []string
	for _, f := range []struct{ flag, v string }{{"--binary", o.binary}, {"--name", o.name}, {"--out", o.out}} {
		if f.v == "" {
			missing = append(missing, f.flag)
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(stderr, "mkimage: missing %s (see mkimage --help)\n", strings.Join(missing, ", "))
		return nil, 2, true
	}
	return o, 0, false
}

func main() {
	o, code, done := parse(os.Args[1:], os.Stdout, os.Stderr)
	if done {
		os.Exit(code)
	}
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "mkimage: %v\n", err)
		os.Exit(1)
	}
}

// run checks the binary, builds the image and writes it to o.out.
func run(o *options) error {
	content, arch, err := readStaticBinary(o.binary)
	if err != nil {
		return err
	}
	spec := imageSpec{
		entrypoint: o.entrypoint,
		env:        o.env,
		args:       o.args,
		arch:       arch,
	}
	if spec.entrypoint == "" {
		spec.entrypoint = "/" + filepath.Base(o.binary)
	}
	tag, err := name.NewTag(o.name)
	if err != nil {
		return fmt.Errorf("--name %q is not an image reference (want e.g. localhost/raft-kv:dev): %v", o.name, err)
	}
	img, err := buildImage(content, spec)
	if err != nil {
		return err
	}
	if err := writeArchive(o.out, tag, img); err != nil {
		return err
	}
	id, err := img.ConfigName()
	if err != nil {
		return err
	}
	fmt.Printf("mkimage: wrote %s (%s, %s, %s)\n", o.out, tag.String(), spec.entrypoint, id)
	return nil
}

// imageSpec is what goes into the image besides the binary's bytes.
type imageSpec struct {
	entrypoint string   // absolute path of the binary in the image
	env        []string // K=V
	args       []string // the image's Cmd
	arch       string   // GOARCH-style name: amd64, arm64, ...
}

// epoch is the time of every file in the layer, for reproducible images.
var epoch = time.Unix(0, 0).UTC()

// buildImage returns empty.Image plus one layer holding binary at
// spec.entrypoint and an empty /tmp, with the config's entrypoint, env and
// platform set.
func buildImage(binary []byte, spec imageSpec) (v1.Image, error) {
	p := spec.entrypoint
	if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
		return nil, fmt.Errorf("--entrypoint %q must be a clean absolute file path, e.g. /raft-kv", p)
	}
	for _, kv := range spec.env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, fmt.Errorf("--env %q is not of the form K=V", kv)
		}
	}
	if spec.arch == "" {
		return nil, errors.New("no architecture for the image")
	}
	layerTar, err := layerTarball(binary, p)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("making the layer: %v", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, fmt.Errorf("adding the layer: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	// containerd imports only the images of its own platform by default, so
	// the config must say which one this is.
	cf.OS = "linux"
	cf.Architecture = spec.arch
	cf.Config.Entrypoint = []string{p}
	cf.Config.Cmd = spec.args
	cf.Config.Env = spec.env
	return mutate.ConfigFile(img, cf)
}

// layerTarball is the uncompressed layer: the parent directories of the
// binary, /tmp (1777: Go's os.TempDir and many libraries expect it), and
// the binary (0755), all owned by root, at the epoch.
func layerTarball(binary []byte, p string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{"tmp": true}
	hdrs := []*tar.Header{{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777, ModTime: epoch}}
	rel := strings.TrimPrefix(p, "/")
	for d := path.Dir(rel); d != "."; d = path.Dir(d) {
		if !dirs[d] {
			dirs[d] = true
			hdrs = append(hdrs, &tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: epoch})
		}
	}
	if dirs[rel] {
		return nil, fmt.Errorf("--entrypoint %s is a directory of the image", p)
	}
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: 0o755, Size: int64(len(binary)), ModTime: epoch}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(binary); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// elfArch maps ELF machines to the architecture names of image configs.
var elfArch = map[elf.Machine]string{
	elf.EM_X86_64:  "amd64",
	elf.EM_AARCH64: "arm64",
	elf.EM_386:     "386",
	elf.EM_ARM:     "arm",
	elf.EM_PPC64:   "ppc64le",
	elf.EM_S390:    "s390x",
	elf.EM_RISCV:   "riscv64",
}

// readStaticBinary reads file and checks that it is a statically linked
// Linux ELF executable; it returns its bytes and its architecture.
func readStaticBinary(file string) ([]byte, string, error) {
	content, err := os.ReadFile(file)
	if err != nil {
		return nil, "", fmt.Errorf("--binary: %v", err)
	}
	f, err := elf.NewFile(bytes.NewReader(content))
	if err != nil {
		return nil, "", fmt.Errorf("--binary %s is not an ELF executable (%v): build it for linux, e.g. GOOS=linux CGO_ENABLED=0 go build", file, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return nil, "", fmt.Errorf("--binary %s is dynamically linked, and a FROM-scratch image has no libc or loader: rebuild it with CGO_ENABLED=0", file)
		}
	}
	arch, ok := elfArch[f.Machine]
	if !ok {
		return nil, "", fmt.Errorf("--binary %s: unsupported ELF machine %v", file, f.Machine)
	}
	return content, arch, nil
}

// writeArchive writes img tagged tag as a docker-archive to out, through a
// temporary file in the same directory and a rename, so that an interrupted
// run never leaves a truncated tarball under the final name.
func writeArchive(out string, tag name.Tag, img v1.Image) error {
	dir := filepath.Dir(out)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--out: %v", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(out)+".*")
	if err != nil {
		return fmt.Errorf("--out: %v", err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if err := tarball.Write(tag, img, tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %v", out, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %v", out, err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return fmt.Errorf("--out: %v", err)
	}
	return nil
}
