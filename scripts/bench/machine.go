package main

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// machine describes where the benchmarks ran, for the report.
type machine struct {
	CPU        string // model name from /proc/cpuinfo
	Cores      int    // logical CPUs the harness can use
	MemTotal   string // from /proc/meminfo
	Kernel     string
	OS         string // PRETTY_NAME from /etc/os-release
	Go         string
	Mosquitto  string
	Filesystem string // of the directory holding the brokers' data
	Commit     string // the tree's git commit, "+ local changes" when dirty
	Date       time.Time
}

func describeMachine(workdir, repo, mosquittoBin string) machine {
	m := machine{
		CPU:        "unknown",
		Cores:      runtime.NumCPU(),
		Kernel:     strings.TrimSpace(readFile("/proc/sys/kernel/osrelease")),
		Go:         goVersion(),
		Mosquitto:  mosquittoVersion(mosquittoBin),
		Filesystem: filesystem(workdir),
		Commit:     gitCommit(repo),
		Date:       time.Now().UTC(),
	}
	if v, ok := field(readFile("/proc/cpuinfo"), "model name", ":"); ok {
		m.CPU = v
	}
	if v, ok := field(readFile("/proc/meminfo"), "MemTotal", ":"); ok {
		m.MemTotal = kibToGiB(v)
	}
	if v, ok := field(readFile("/etc/os-release"), "PRETTY_NAME", "="); ok {
		m.OS = strings.Trim(v, `"`)
	}
	return m
}

// kibToGiB turns meminfo's "24684084 kB" into "23.5 GiB" (unchanged when not in kB).
func kibToGiB(v string) string {
	n, unit, _ := strings.Cut(v, " ")
	kb, err := strconv.ParseFloat(n, 64)
	if err != nil || unit != "kB" {
		return v
	}
	return strconv.FormatFloat(kb/(1<<20), 'f', 1, 64) + " GiB"
}

func readFile(path string) string {
	b, _ := os.ReadFile(path) // a missing file leaves the field empty
	return string(b)
}

// field returns the value of the first "key<sep>value" line of text.
func field(text, key, sep string) (string, bool) {
	for line := range strings.Lines(text) {
		k, v, ok := strings.Cut(line, sep)
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// goVersion is the go command's version (what built the binaries), or the harness's own.
func goVersion() string {
	if out, err := exec.Command("go", "env", "GOVERSION").Output(); err == nil {
		return strings.TrimSpace(string(out))
	}
	return runtime.Version()
}

// filesystem names the file system type of dir (fsync costs differ widely), from
// statfs's magic number.
func filesystem(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "unknown"
	}
	names := map[int64]string{
		0xEF53: "ext4", 0x58465342: "xfs", 0x9123683E: "btrfs", 0x01021994: "tmpfs",
		0x794C7630: "overlayfs", 0x2FC12FC1: "zfs", 0x6969: "nfs", 0xF2F52010: "f2fs",
	}
	if n, ok := names[int64(st.Type)]; ok {
		return n
	}
	return "0x" + strconv.FormatInt(int64(st.Type), 16)
}

// gitCommit returns the short commit of repo's HEAD. Both git commands only read
// (GIT_OPTIONAL_LOCKS=0 keeps even the index untouched).
func gitCommit(repo string) string {
	git := func(args ...string) *exec.Cmd {
		c := exec.Command("git", append([]string{"-C", repo}, args...)...)
		c.Env = append(os.Environ(), "GIT_OPTIONAL_LOCKS=0")
		return c
	}
	out, err := git("rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if git("diff-index", "--quiet", "HEAD", "--").Run() != nil {
		c += " + local changes"
	}
	return c
}
