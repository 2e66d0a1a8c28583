package main

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestImageRoundTrip builds an image from a small file, writes it as a
// docker-archive, reads it back with go-containerregistry and checks what a
// container runtime will see: one layer holding the file at the entrypoint
// with mode 0755 and /tmp, the config's entrypoint, env, cmd and platform,
// and the tag in manifest.json.
func TestImageRoundTrip(t *testing.T) {
	content := []byte("#!not really a binary\n")
	spec := imageSpec{
		entrypoint: "/usr/local/bin/kv",
		env:        []string{"RAFT_KV_DATA_DIR=/data", "A=b=c"},
		args:       []string{"--x", "1"},
		arch:       "amd64",
	}
	img, err := buildImage(content, spec)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "sub", "kv.tar")
	tag, err := name.NewTag("localhost/raft-kv:dev")
	if err != nil {
		t.Fatal(err)
	}
	if err := writeArchive(out, tag, img); err != nil {
		t.Fatal(err)
	}

	back, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatalf("reading the archive back: %v", err)
	}
	layers, err := back.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	entries := map[string]*tar.Header{}
	var got []byte
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		entries[h.Name] = h
		if h.Name == "usr/local/bin/kv" {
			if got, err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	bin := entries["usr/local/bin/kv"]
	switch {
	case bin == nil:
		t.Fatalf("no usr/local/bin/kv in the layer; entries: %v", keys(entries))
	case bin.Typeflag != tar.TypeReg || bin.Mode&0o7777 != 0o755:
		t.Errorf("usr/local/bin/kv: type %c mode %o, want a regular file 0755", bin.Typeflag, bin.Mode)
	case !bytes.Equal(got, content):
		t.Errorf("usr/local/bin/kv holds %q, want %q", got, content)
	}
	for d, mode := range map[string]int64{"tmp/": 0o1777, "usr/": 0o755, "usr/local/": 0o755, "usr/local/bin/": 0o755} {
		if h := entries[d]; h == nil || h.Typeflag != tar.TypeDir || h.Mode&0o7777 != mode {
			t.Errorf("%s: %+v, want a directory %o", d, h, mode)
		}
	}

	cf, err := back.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/usr/local/bin/kv"}; !reflect.DeepEqual(cf.Config.Entrypoint, want) {
		t.Errorf("entrypoint %q, want %q", cf.Config.Entrypoint, want)
	}
	if !reflect.DeepEqual(cf.Config.Env, spec.env) {
		t.Errorf("env %q, want %q", cf.Config.Env, spec.env)
	}
	if !reflect.DeepEqual(cf.Config.Cmd, spec.args) {
		t.Errorf("cmd %q, want %q", cf.Config.Cmd, spec.args)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("platform %s/%s, want linux/amd64", cf.OS, cf.Architecture)
	}

	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(out) })
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || !reflect.DeepEqual(m[0].RepoTags, []string{"localhost/raft-kv:dev"}) {
		t.Errorf("manifest.json %+v, want one image tagged localhost/raft-kv:dev", m)
	}

	// Reproducible: the same inputs give the same image ID.
	again, err := buildImage(content, spec)
	if err != nil {
		t.Fatal(err)
	}
	id1, _ := img.ConfigName()
	id2, _ := again.ConfigName()
	if id1 != id2 {
		t.Errorf("two builds of the same input: image IDs %s and %s", id1, id2)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".kv.tar.*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func keys(m map[string]*tar.Header) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// TestBadInput pins the errors a user meets: each says what is wrong.
func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		spec imageSpec
		want string
	}{
		{imageSpec{entrypoint: "raft-kv", arch: "amd64"}, "clean absolute file path"},
		{imageSpec{entrypoint: "/a/../b", arch: "amd64"}, "clean absolute file path"},
		{imageSpec{entrypoint: "/tmp", arch: "amd64"}, "is a directory"},
		{imageSpec{entrypoint: "/kv", env: []string{"NOEQUALS"}, arch: "amd64"}, "not of the form K=V"},
	} {
		if _, err := buildImage([]byte("x"), tc.spec); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one containing %q", tc.spec, err, tc.want)
		}
	}

	notELF := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readStaticBinary(notELF); err == nil || !strings.Contains(err.Error(), "not an ELF executable") {
		t.Errorf("shell script: error %v, want 'not an ELF executable'", err)
	}
	if _, _, err := readStaticBinary(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing file: no error")
	}
	// /bin/sh is dynamically linked on every glibc distribution.
	if _, err := os.Stat("/bin/sh"); err == nil {
		if _, _, err := readStaticBinary("/bin/sh"); err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
			t.Errorf("/bin/sh: error %v, want the dynamic-linking error", err)
		}
	}
}

// TestFlags checks --help and the required flags.
func TestFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	if _, code, done := parse([]string{"--help"}, &out, &errOut); !done || code != 0 || !strings.Contains(out.String(), "--entrypoint") {
		t.Errorf("--help: done %v code %d, output %q", done, code, out.String())
	}
	errOut.Reset()
	if _, code, done := parse([]string{"--binary", "x"}, &out, &errOut); !done || code != 2 || !strings.Contains(errOut.String(), "missing --name, --out") {
		t.Errorf("missing flags: done %v code %d, stderr %q", done, code, errOut.String())
	}
	o, _, done := parse([]string{"--binary", "b", "--name", "n", "--out", "o", "--env", "A=1", "--env", "B=2"}, &out, &errOut)
	if done || !reflect.DeepEqual([]string(o.env), []string{"A=1", "B=2"}) {
		t.Errorf("--env twice: done %v env %q", done, o.env)
	}
}
