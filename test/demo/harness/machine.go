package harness

import (
	"fmt"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Machine describes where the numbers were measured.
type Machine struct {
	CPUs    int
	CPU     string
	Kernel  string
	MemGiB  float64
	MariaDB string
	Go      string
}

// DescribeMachine reads nproc, the CPU model, kernel and memory.
func DescribeMachine(mariadbVersion string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), MariaDB: mariadbVersion, Go: runtime.Version()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:]) + " " + unix.ByteSliceToString(u.Machine[:])
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		m.MemGiB = float64(si.Totalram) * float64(si.Unit) / (1 << 30)
	}
	return m
}

func (m Machine) String() string {
	return fmt.Sprintf("machine: %d CPUs (%s), %.1f GiB RAM, Linux %s, MariaDB %s, %s", m.CPUs, m.CPU, m.MemGiB, m.Kernel, m.MariaDB, m.Go)
}
