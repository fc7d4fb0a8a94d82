package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// MariaDB is a MariaDB server of one test, on a loopback port, without grant tables (any
// user connects), with one empty database, DB.
type MariaDB struct {
	Addr string // 127.0.0.1:port
	DB   string
}

// DSN is the database in go-sql-driver's form, as flatbed lazy's --db-str takes it.
func (m *MariaDB) DSN() string { return "root@tcp(" + m.Addr + ")/" + m.DB }

// Query runs SQL with the mariadb client and returns its tab-separated rows, no header.
func (m *MariaDB) Query(t testing.TB, query string) string {
	t.Helper()
	host, port, _ := strings.Cut(m.Addr, ":")
	client := requireTool(t, "mariadb", "mariadb-client")
	return strings.TrimSpace(string(run(t, toolTimeout, client, "--no-defaults", "-h", host, "-P", port, "-u", "root", "-N", "-B", "-D", m.DB, "-e", query)))
}

// StartMariaDB initialises a data directory with mariadb-install-db and starts Debian's
// mariadbd on a free loopback port (--skip-networking off, bound to 127.0.0.1 only); the
// server is stopped on t.Cleanup. Without mariadb-server installed the test is skipped, or
// fails when env CI is set.
func StartMariaDB(t testing.TB) *MariaDB {
	t.Helper()
	server := requireTool(t, "mariadbd", "mariadb-server")
	install := requireTool(t, "mariadb-install-db", "mariadb-server")
	// A short path: the socket's name must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "mdb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	data := filepath.Join(dir, "data")
	run(t, 2*time.Minute, install, "--no-defaults", "--datadir="+data, "--user=root", "--auth-root-authentication-method=normal", "--skip-test-db")
	addr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(addr, ":")
	cmd := exec.Command(server, "--no-defaults", "--datadir="+data, "--socket="+filepath.Join(dir, "s"), "--port="+port,
		"--bind-address=127.0.0.1", "--user=root", "--skip-grant-tables", "--skip-name-resolve", "--pid-file="+filepath.Join(dir, "pid"),
		"--log-error="+filepath.Join(dir, "error.log"), "--innodb-buffer-pool-size=32M", "--skip-log-bin")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting mariadbd: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	m := &MariaDB{Addr: addr, DB: "flatbed"}
	client := requireTool(t, "mariadb", "mariadb-client")
	host, _, _ := strings.Cut(addr, ":")
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := exec.Command(client, "--no-defaults", "-h", host, "-P", port, "-u", "root", "-e", "CREATE DATABASE IF NOT EXISTS "+m.DB).CombinedOutput()
		if err == nil {
			return m
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("mariadbd on %s did not answer within 60s: %v %s\n%s", addr, err, out, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
