package dockertwin

import (
	"archive/tar"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"github.com/docker/docker/api/types/image"
)

// Image is the reference of the twin's container image.
const Image = "dnft-twin:1"

// busyboxApplets are linked to /bin/busybox in the image.
var busyboxApplets = []string{"sh", "nc", "wget", "ping", "ip", "sleep", "nslookup", "cat", "ls", "ps"}

// BuildImage writes the image's root filesystem as a tar file into dir
// and returns its path: /bin/busybox (Debian's busybox-static) with applet
// links, and /bin/echod, the echo server and client of package echod,
// built static. Import it with [Daemon.ImportImage].
func BuildImage(ctx context.Context, dir string) (string, error) {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return "", fmt.Errorf("busybox not found (apt-get install busybox-static): %w", err)
	}
	if err := static(bb); err != nil {
		return "", err
	}
	echod := filepath.Join(dir, "echod")
	_, self, _, _ := runtime.Caller(0)
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", echod, "./echod")
	build.Dir = filepath.Dir(self)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build echod: %w: %s", err, out)
	}
	path := filepath.Join(dir, "rootfs.tar")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, d := range []string{"bin/", "etc/", "tmp/", "proc/", "sys/", "dev/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755}); err != nil {
			return "", err
		}
	}
	for _, file := range [][2]string{{bb, "bin/busybox"}, {echod, "bin/echod"}} {
		if err := addFile(tw, file[0], file[1]); err != nil {
			return "", err
		}
	}
	for _, a := range busyboxApplets {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777}); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	return path, f.Close()
}

// static fails unless the ELF file at path has no program interpreter.
func static(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is not statically linked (install busybox-static)", path)
		}
	}
	return nil
}

func addFile(tw *tar.Writer, src, name string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o755, Size: st.Size()}); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

// ImportImage imports the root filesystem tar as [Image].
func (d *Daemon) ImportImage(ctx context.Context, tarPath string) error {
	f, err := os.Open(tarPath)
	if err != nil {
		return err
	}
	defer f.Close()
	rc, err := d.Client.ImageImport(ctx, image.ImportSource{Source: f, SourceName: "-"}, Image, image.ImportOptions{})
	if err != nil {
		return fmt.Errorf("import image: %w", err)
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}
