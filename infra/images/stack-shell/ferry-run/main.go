// ferry-run is the application server of Ferry's "shell" tech stack (what
// Tomcat is to a JDK stack): it serves HTTP on $PORT, routes /<name> to the
// app's /app/routes/<name>.sh, answers /ready and /healthz, writes an access
// and application log to stdout and $LOG_DIR/app.log, and a GC-style log of
// its own heap to $LOG_DIR/gc.log.
//
// For delivery tests it can be told to misbehave, by environment variable at
// start or by HTTP request at run time:
//
//	FAIL_READY=1                /control/unready, /control/ready   readiness
//	CRASH_AFTER_SECONDS=N       /control/crash?code=N             exit non-zero
//	OOM_AFTER_SECONDS=N         /control/oom                      main process allocates until killed
//	OOM_CHILD_AFTER_SECONDS=N   /control/oom-child?mb=N           a child process allocates N MiB (default 1024)
//	LEAK_MB_PER_SECOND=N                                          main process leaks N MiB/s
//	                            /control/log?msg=...              write a line to the app log
//	FAULT_ERROR_PERCENT=N                                         N% of app requests answer 500
//	FAULT_LATENCY_MS=N                                            app requests take N ms longer
//
// /metrics serves Prometheus' text format (written by hand: stdlib only):
// app requests by status code, their latency histogram, and memory in use.
// Probe, control and metrics requests are not counted as app requests, so
// a gate compares what users get, not what the kubelet gets.
//
// Standard library only, built static by infra/infra.sh.
package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

var (
	appDir   = env("APP_DIR", "/app")
	logDir   = env("LOG_DIR", "/var/log/app")
	appName  = env("APP_NAME", "app")
	version  = appVersion()
	unready  atomic.Bool
	hoard    [][]byte
	hoardMu  sync.Mutex
	logMu    sync.Mutex
	appLog   io.Writer = io.Discard
	gcLog    io.Writer = io.Discard
	started            = time.Now()
	routeRe            = regexp.MustCompile(`^/([a-zA-Z0-9_-]+)$`)
	gcCount  int
	hostname string
)

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func appVersion() string {
	if v := os.Getenv("APP_VERSION"); v != "" {
		return v
	}
	if b, err := os.ReadFile(filepath.Join(env("APP_DIR", "/app"), "VERSION")); err == nil && len(b) > 0 {
		return strings.TrimSpace(string(b))
	}
	return "dev"
}

func envInt(k string) int {
	n, _ := strconv.Atoi(os.Getenv(k))
	return n
}

func logf(level, format string, args ...any) {
	line := fmt.Sprintf("%s %-5s [%s] %s %s\n", time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), level,
		appName, version, fmt.Sprintf(format, args...))
	logMu.Lock()
	defer logMu.Unlock()
	os.Stdout.WriteString(line)
	appLog.Write([]byte(line))
}

// allocate touches n MiB and keeps it reachable.
func allocate(mb int) {
	for i := 0; i < mb; i++ {
		b := make([]byte, 1<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = 1
		}
		hoardMu.Lock()
		hoard = append(hoard, b)
		hoardMu.Unlock()
	}
}

func oomMain() {
	logf("WARN", "main process (pid %d) allocating memory until the limit is hit", os.Getpid())
	for i := 1; ; i++ {
		allocate(16)
		if i%4 == 0 {
			logf("WARN", "main process holds %d MiB", i*16)
		}
	}
}

func oomChild(mb int) (int, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(self, "hog", strconv.Itoa(mb))
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	pid := cmd.Process.Pid
	logf("WARN", "started child process %d to allocate %d MiB", pid, mb)
	go func() {
		err := cmd.Wait()
		logf("ERROR", "child process %d exited: %v", pid, err)
	}()
	return pid, nil
}

func gcLoop() {
	var last runtime.MemStats
	runtime.ReadMemStats(&last)
	for range time.Tick(2 * time.Second) {
		before := last.HeapAlloc
		t0 := time.Now()
		runtime.GC()
		pause := time.Since(t0)
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		gcCount++
		up := time.Since(started).Seconds()
		line := fmt.Sprintf("[%s][%.3fs][info][gc] GC(%d) Pause Full (System.gc()) %dM->%dM(%dM) %.3fms\n",
			time.Now().UTC().Format("2006-01-02T15:04:05.000+0000"), up, gcCount,
			before>>20, ms.HeapAlloc>>20, ms.Sys>>20, float64(pause.Microseconds())/1000)
		logMu.Lock()
		gcLog.Write([]byte(line))
		logMu.Unlock()
		last = ms
	}
}

func openLog(name string) io.Writer {
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "ferry-run: %v\n", err)
		return io.Discard
	}
	f, err := os.OpenFile(filepath.Join(logDir, name), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferry-run: %v\n", err)
		return io.Discard
	}
	return f
}

func runRoute(w http.ResponseWriter, r *http.Request, script string) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", script)
	cmd.Dir = appDir
	cmd.Env = append(os.Environ(),
		"REQUEST_METHOD="+r.Method, "QUERY_STRING="+r.URL.RawQuery, "REQUEST_URI="+r.URL.RequestURI(),
		"LOG_FILE="+filepath.Join(logDir, "app.log"))
	cmd.Stdin = r.Body
	out, err := cmd.Output()
	if err != nil {
		logf("ERROR", "route %s failed: %v", r.URL.Path, err)
		http.Error(w, fmt.Sprintf("route failed: %v\n%s", err, out), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(out)
}

// Request metrics: counts by status code and a latency histogram of app requests.
var (
	latencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}
	metricsMu      sync.Mutex
	requestsByCode = map[int]uint64{}
	bucketCounts   = make([]uint64, len(latencyBuckets))
	latencySum     float64
	latencyCount   uint64
	faultErrorPct  = envInt("FAULT_ERROR_PERCENT")
	faultLatencyMs = envInt("FAULT_LATENCY_MS")
)

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// appRequest: what a user calls (not probes, controls or the scrape itself).
func appRequest(path string) bool {
	return path != "/metrics" && path != "/ready" && path != "/healthz" && !strings.HasPrefix(path, "/control/")
}

func observe(code int, seconds float64) {
	metricsMu.Lock()
	defer metricsMu.Unlock()
	requestsByCode[code]++
	for i, le := range latencyBuckets {
		if seconds <= le {
			bucketCounts[i]++
		}
	}
	latencySum += seconds
	latencyCount++
}

func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func writeMetrics(w http.ResponseWriter) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	metricsMu.Lock()
	defer metricsMu.Unlock()
	fmt.Fprintln(w, "# HELP http_requests_total App requests served, by status code.")
	fmt.Fprintln(w, "# TYPE http_requests_total counter")
	codes := make([]int, 0, len(requestsByCode))
	for c := range requestsByCode {
		codes = append(codes, c)
	}
	for i := 1; i < len(codes); i++ {
		for j := i; j > 0 && codes[j] < codes[j-1]; j-- {
			codes[j], codes[j-1] = codes[j-1], codes[j]
		}
	}
	for _, c := range codes {
		fmt.Fprintf(w, "http_requests_total{code=\"%d\"} %d\n", c, requestsByCode[c])
	}
	fmt.Fprintln(w, "# HELP http_request_duration_seconds Latency of app requests.")
	fmt.Fprintln(w, "# TYPE http_request_duration_seconds histogram")
	for i, le := range latencyBuckets {
		fmt.Fprintf(w, "http_request_duration_seconds_bucket{le=\"%g\"} %d\n", le, bucketCounts[i])
	}
	fmt.Fprintf(w, "http_request_duration_seconds_bucket{le=\"+Inf\"} %d\n", latencyCount)
	fmt.Fprintf(w, "http_request_duration_seconds_sum %g\n", latencySum)
	fmt.Fprintf(w, "http_request_duration_seconds_count %d\n", latencyCount)
	fmt.Fprintln(w, "# HELP app_memory_in_use_bytes Memory the app holds (Go heap in use).")
	fmt.Fprintln(w, "# TYPE app_memory_in_use_bytes gauge")
	fmt.Fprintf(w, "app_memory_in_use_bytes %d\n", ms.HeapInuse)
	fmt.Fprintln(w, "# HELP process_resident_memory_bytes Resident memory of the server process.")
	fmt.Fprintln(w, "# TYPE process_resident_memory_bytes gauge")
	fmt.Fprintf(w, "process_resident_memory_bytes %d\n", rssBytes())
	fmt.Fprintln(w, "# HELP app_info The app and version this server runs.")
	fmt.Fprintln(w, "# TYPE app_info gauge")
	fmt.Fprintf(w, "app_info{app=\"%s\",version=\"%s\"} 1\n", appName, version)
}

func handler(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/metrics" {
		writeMetrics(w)
		return
	}
	if !appRequest(r.URL.Path) {
		serve(w, r)
		return
	}
	t0 := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	if faultLatencyMs > 0 {
		time.Sleep(time.Duration(faultLatencyMs) * time.Millisecond)
	}
	if faultErrorPct > 0 && rand.IntN(100) < faultErrorPct {
		logf("ERROR", "%s %s from %s: failing on purpose (FAULT_ERROR_PERCENT=%d)", r.Method, r.URL.RequestURI(), r.RemoteAddr, faultErrorPct)
		http.Error(rec, "injected failure", http.StatusInternalServerError)
	} else {
		serve(rec, r)
	}
	if rec.code == 0 {
		rec.code = http.StatusOK
	}
	observe(rec.code, time.Since(t0).Seconds())
}

func serve(w http.ResponseWriter, r *http.Request) {
	logf("INFO", "%s %s from %s", r.Method, r.URL.RequestURI(), r.RemoteAddr)
	q := r.URL.Query()
	switch r.URL.Path {
	case "/healthz":
		fmt.Fprintln(w, "ok")
	case "/ready":
		if unready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		if s := filepath.Join(appDir, "routes", "ready.sh"); fileExists(s) {
			if err := exec.Command("/bin/sh", s).Run(); err != nil {
				http.Error(w, "app not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ready")
	case "/version":
		fmt.Fprintf(w, "%s %s\n", appName, version)
	case "/control/unready":
		unready.Store(true)
		logf("WARN", "readiness turned off by request")
		fmt.Fprintln(w, "unready")
	case "/control/ready":
		unready.Store(false)
		logf("INFO", "readiness turned on by request")
		fmt.Fprintln(w, "ready")
	case "/control/crash":
		code, _ := strconv.Atoi(q.Get("code"))
		if code == 0 {
			code = 3
		}
		logf("ERROR", "crashing with exit code %d by request", code)
		fmt.Fprintf(w, "crashing with %d\n", code)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		go func() { time.Sleep(100 * time.Millisecond); os.Exit(code) }()
	case "/control/oom":
		fmt.Fprintln(w, "allocating in the main process")
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		go oomMain()
	case "/control/oom-child":
		mb, _ := strconv.Atoi(q.Get("mb"))
		if mb <= 0 {
			mb = 1024
		}
		pid, err := oomChild(mb)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "child %d allocating %d MiB\n", pid, mb)
	case "/control/log":
		logf(env("LOG_LEVEL_OVERRIDE", "INFO"), "%s", q.Get("msg"))
		fmt.Fprintln(w, "logged")
	case "/":
		if s := filepath.Join(appDir, "routes", "index.sh"); fileExists(s) {
			runRoute(w, r, s)
			return
		}
		fmt.Fprintf(w, "hello from %s %s on %s\n", appName, version, hostname)
	default:
		if m := routeRe.FindStringSubmatch(r.URL.Path); m != nil {
			if s := filepath.Join(appDir, "routes", m[1]+".sh"); fileExists(s) {
				runRoute(w, r, s)
				return
			}
		}
		http.NotFound(w, r)
	}
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

func after(k string, f func()) {
	if n := envInt(k); n > 0 {
		go func() {
			time.Sleep(time.Duration(n) * time.Second)
			logf("WARN", "%s=%d reached", k, n)
			f()
		}()
	}
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "hog" {
		mb, _ := strconv.Atoi(os.Args[2])
		fmt.Fprintf(os.Stdout, "hog %d: allocating %d MiB\n", os.Getpid(), mb)
		allocate(mb)
		fmt.Fprintf(os.Stdout, "hog %d: holding %d MiB\n", os.Getpid(), mb)
		select {}
	}
	hostname, _ = os.Hostname()
	appLog = openLog("app.log")
	gcLog = openLog("gc.log")
	if os.Getenv("FAIL_READY") == "1" || os.Getenv("FAIL_READY") == "true" {
		unready.Store(true)
	}
	port := env("PORT", "8080")
	logf("INFO", "starting %s %s on :%s (pid %d, unready=%v)", appName, version, port, os.Getpid(), unready.Load())
	go gcLoop()
	after("CRASH_AFTER_SECONDS", func() { logf("ERROR", "crashing"); os.Exit(3) })
	after("OOM_AFTER_SECONDS", oomMain)
	after("OOM_CHILD_AFTER_SECONDS", func() { oomChild(1024) })
	if n := envInt("LEAK_MB_PER_SECOND"); n > 0 {
		go func() {
			for total := n; ; total += n {
				allocate(n)
				logf("WARN", "leaked %d MiB so far", total)
				time.Sleep(time.Second)
			}
		}()
	}
	// PID 1 duties: reap orphans (children are waited for by their starter)
	srv := &http.Server{Addr: ":" + port, Handler: http.HandlerFunc(handler), ReadHeaderTimeout: 10 * time.Second}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s := <-sig
		logf("INFO", "received %v, shutting down", s)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		logf("ERROR", "server: %v", err)
		os.Exit(1)
	}
	logf("INFO", "stopped")
}
