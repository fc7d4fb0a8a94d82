#!/usr/bin/env bash
# `make bench`: flatbed against its peers and against issue 9's goals, in one run, printing
# medians, ratios and peak RSS. Starts docker-registry on a free loopback port with its access
# log on, pushes deterministic images (e2e/cmd/benchimages), and measures:
#
#   A. classic   the demo images and a few pseudo-random ones: flatbed convert cold (fresh
#                store) and warm (again), skopeo copy + umoci raw unpack, crane export | tar -x
#   B. big       cold convert of one 100 MB+ multi-layer image of many files (layers + flat +
#                metadata, directory store, -i) vs skopeo+umoci (goal <= 0.4x) and crane
#                (goal <= 0.5x)
#   C. rerun     an unchanged wishlist of 50 images converted again: registry requests (from
#                the access log) and wall time (goal <= 1 request per image + 1, < 2 s)
#   D. shared    10 images on one base, cold: layer bytes fetched / unique layer bytes (goal 1.00)
#   E. huge      an image with a 1 GiB layer of pseudo-random bytes: peak RSS (goal < 256 MiB)
#   F. hop       one event hop through the bus (events/bus BenchmarkEventHop): p50, p99 (goal
#                p99 < 2 ms)
#   G. scale     1, 2 and 4 `flatbed serve ingester` processes (one more serves the other
#                stages, one nats-server) against the registry behind e2e/cmd/latencyproxy:
#                images per minute (goal: 4 ingesters >= 3x one)
#   H. gobench   the Go benchmarks of the hot paths (pkg/layer, pkg/flatten)
#   I. lazy      the big image of B (pushed here when B did not run) converted to eStargz by
#                `flatbed lazy` (fresh state: every layer converted), and to zstd:chunked, vs
#                `crane copy` of it (a cross-repository mount), `crane pull` + `crane push` (every
#                byte out and in, unconverted), and overlaybd's convertor's published figure,
#                567 MB in 13 s, scaled to the image's compressed size (goal <= 1.00x of that)
#
# then a table of the goals, PASS or MISS, and, when the cold convert misses its goal and perf
# is installed, the top functions of a perf profile of that convert (BENCH_PROFILE).
#
# Wall time, user and system time and peak RSS come from GNU time (/usr/bin/time -f; a
# pipeline's peak is its largest process); the serve processes' peaks from VmHWM in
# /proc/PID/status. Timed runs repeat BENCH_RUNS times into fresh directories; tables show
# medians, ranges and the largest peak.
#
# Knobs (environment), defaults in brackets; BENCH_QUICK=1 makes every size small to try it out:
#   BENCH_RUNS [3]  BENCH_ONLY [all: classic big rerun shared huge hop scale lazy gobench]
#   BENCH_IMAGES [4] BENCH_LAYERS [4] BENCH_LAYER_MIB [8]            (A)
#   BENCH_BIG_LAYERS [5] BENCH_BIG_MIB [250] BENCH_BIG_FILES [7200]  (B)
#   BENCH_WISHLIST_IMAGES [50]                                       (C)
#   BENCH_SHARED_IMAGES [10] BENCH_SHARED_BASE_MIB [16] BENCH_SHARED_LAYER_MIB [2]   (D)
#   BENCH_HUGE_MIB [1024] BENCH_HUGE_PEERS [1: skopeo+umoci and crane too]           (E)
#   BENCH_HOP_N [2000]                                               (F)
#   BENCH_SCALE_WORKERS ["1 2 4"] BENCH_SCALE_IMAGES [64] BENCH_SCALE_LAYERS [3]
#   BENCH_SCALE_LAYER_KIB [512] BENCH_SCALE_DELAY [50ms] BENCH_SCALE_RATE [1048576 bytes/s
#   per request] BENCH_SCALE_JOBS [flatbed's --max-concurrent-downloads default]   (G)
#   BENCH_PROFILE [auto: on a missed cold-convert goal; 0 never; 1 always]
#   BENCH_KEEP (set: keep the outputs, and print where), GO [go]
# Needs bin/flatbed (make build), docker-registry, umoci, skopeo, GNU time
# (scripts/install-test-deps.sh installs them); builds crane and nats-server from the module
# cache.
set -euo pipefail

cd "$(dirname "$0")/.."
GO=${GO:-go}
FLATBED=$PWD/bin/flatbed

# --peer TOOL DIR REF...: the peers' way to an unpacked root file system of each REF, one
# after the other, under DIR/imgN (run under GNU time by the measurements below).
if [ "${1:-}" = --peer ]; then
  tool=$2 dir=$3
  shift 3
  i=0
  for ref; do
    case $tool in
    umoci)
      skopeo copy -q --src-tls-verify=false "docker://$ref" "oci:$dir/oci:img$i"
      umoci raw unpack --image "$dir/oci:img$i" "$dir/img$i"
      ;;
    crane)
      mkdir -p "$dir/img$i"
      "$CRANE" export --insecure "$ref" - | tar -x -C "$dir/img$i"
      ;;
    esac
    i=$((i + 1))
  done
  exit 0
fi

if [ -n "${BENCH_QUICK:-}" ]; then
  q() { echo "$1"; }
else
  q() { echo "$2"; }
fi
RUNS=${BENCH_RUNS:-$(q 1 3)}
ONLY=${BENCH_ONLY:-classic big rerun shared huge hop scale lazy gobench}
IMAGES=${BENCH_IMAGES:-$(q 2 4)}
LAYERS=${BENCH_LAYERS:-$(q 2 4)}
LAYER_MIB=${BENCH_LAYER_MIB:-$(q 2 8)}
BIG_LAYERS=${BENCH_BIG_LAYERS:-5}
BIG_MIB=${BENCH_BIG_MIB:-$(q 25 250)}
BIG_FILES=${BENCH_BIG_FILES:-$(q 1000 7200)}
WL_IMAGES=${BENCH_WISHLIST_IMAGES:-$(q 10 50)}
SH_IMAGES=${BENCH_SHARED_IMAGES:-$(q 4 10)}
SH_BASE_MIB=${BENCH_SHARED_BASE_MIB:-$(q 4 16)}
SH_LAYER_MIB=${BENCH_SHARED_LAYER_MIB:-$(q 1 2)}
HUGE_MIB=${BENCH_HUGE_MIB:-$(q 64 1024)}
HUGE_PEERS=${BENCH_HUGE_PEERS:-1}
HOP_N=${BENCH_HOP_N:-$(q 200 2000)}
SC_WORKERS=${BENCH_SCALE_WORKERS:-1 2 4}
SC_IMAGES=${BENCH_SCALE_IMAGES:-$(q 8 64)}
SC_LAYERS=${BENCH_SCALE_LAYERS:-3}
SC_LAYER_KIB=${BENCH_SCALE_LAYER_KIB:-$(q 256 512)}
SC_DELAY=${BENCH_SCALE_DELAY:-50ms}
SC_RATE=${BENCH_SCALE_RATE:-1048576}
SC_JOBS=${BENCH_SCALE_JOBS:-}
PROFILE=${BENCH_PROFILE:-auto}

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
wants() { [[ " ${ONLY//,/ } " == *" $1 "* ]]; }

[ -x "$FLATBED" ] || die "$FLATBED missing: run 'make build' (or 'make bench')"
scripts/install-test-deps.sh
for t in docker-registry umoci skopeo tar; do
  command -v "$t" >/dev/null 2>&1 || die "$t not found (scripts/install-test-deps.sh installs it)"
done
[ -x /usr/bin/time ] || die "/usr/bin/time (GNU time) not found (scripts/install-test-deps.sh installs it)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/flatbed-bench.XXXXXX")
mkdir -p "$tmp/m" "$tmp/bin"
pids=() # background processes this script started and has not stopped yet
stop() { # PID...: stops processes this script started, and forgets them
  local p q keep=()
  for p; do kill "$p" 2>/dev/null || true; done
  for p; do wait "$p" 2>/dev/null || true; done
  for q in "${pids[@]}"; do [[ " $* " == *" $q "* ]] || keep+=("$q"); done
  pids=("${keep[@]}")
}
cleanup() {
  stop "${pids[@]}"
  if [ -n "${BENCH_KEEP:-}" ]; then
    echo "bench: outputs kept in $tmp" >&2
    return
  fi
  chmod -R u+rwX "$tmp" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
echo "flatbed bench, $started: $(nproc) CPUs, $(free -h | awk '/^Mem:/ { print $2 " memory, " $7 " available" }')," \
  "kernel $(uname -r), /tmp on $(df -h /tmp | awk 'NR == 2 { print $1 " (" $4 " free)" }')"
echo "load at start:$(uptime | sed 's/.*load average://')"
if git rev-parse --git-dir >/dev/null 2>&1; then
  echo "bin/flatbed built from $(git rev-parse --short HEAD)$(git status --porcelain --untracked-files=no | awk 'END { if (NR) printf " plus %d modified tracked file(s)", NR }')"
fi
[ -n "${BENCH_QUICK:-}" ] && echo "BENCH_QUICK: small sizes, a try-out; the goals are for the full sizes"
echo

# --- tools ------------------------------------------------------------------------------

say "building crane (from pkg's module graph), nats-server (from events'), benchimages and latencyproxy (e2e)"
crane=""
if (cd pkg && "$GO" build -o ../bin/crane github.com/google/go-containerregistry/cmd/crane) >"$tmp/crane-build.log" 2>&1; then
  crane=$PWD/bin/crane
else
  echo "bench: skipping crane: cmd/crane does not build from pkg's module graph:" >&2
  sed 's/^/  /' "$tmp/crane-build.log" >&2
fi
export CRANE=$crane
# The nats-server version flatbed embeds (Debian's is too old), as e2e builds it.
(cd events && "$GO" build -o "$tmp/bin/nats-server" github.com/nats-io/nats-server/v2) || die "building nats-server failed"
(cd e2e && "$GO" build -o "$tmp/bin/" ./cmd/benchimages ./cmd/latencyproxy) || die "building e2e/cmd/benchimages and latencyproxy failed"

# --- measuring --------------------------------------------------------------------------

# measure NAME CMD...: runs CMD under GNU time and appends "wall user sys peak-KiB" to the
# series NAME. CMD's output goes where the caller redirects it.
measure() {
  local name=$1
  shift
  /usr/bin/time -f '%e %U %S %M' -o "$tmp/m/now" "$@" || return $?
  cat "$tmp/m/now" >>"$tmp/m/$name"
}
col() { [ -f "$tmp/m/$1" ] && awk -v k="$2" '{ print $k }' "$tmp/m/$1"; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "-" }'; }
spread() { sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR > 1) printf "%s-%s", lo, hi; else printf "-" }'; }
med() { col "$1" 1 | median; }                                      # median wall seconds
rng() { col "$1" 1 | spread; }                                      # range of wall seconds
cpu() { col "$1" 2 | median | tr '\n' '+'; col "$1" 3 | median; }   # median user+sys seconds
peak() { col "$1" 4 | sort -n | tail -1 | awk '{ printf "%.0f MiB", $1 / 1024 }'; } # largest peak RSS
sane() { # DIR MIB NAME: DIR holds at least MIB MiB of regular files (hard links once)
  local got
  got=$(find "$1" -type f -printf '%i %s\n' 2>/dev/null | sort -u | awk '{ s += $2 } END { printf "%.0f", s / 1048576 }')
  [ "$got" -ge "$2" ] || die "$3 output holds $got MiB of files, want at least $2 MiB"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "n/a" }'; }
le() { awk -v v="$1" -v g="$2" 'BEGIN { exit !(v != "n/a" && v + 0 <= g + 0) }'; }
lt() { awk -v v="$1" -v g="$2" 'BEGIN { exit !(v != "n/a" && v + 0 < g + 0) }'; }
ge() { awk -v v="$1" -v g="$2" 'BEGIN { exit !(v != "n/a" && v + 0 >= g + 0) }'; }
verdict() { if "$@"; then echo PASS; else echo MISS; fi; }
goals=() # "goal<TAB>measured<TAB>target<TAB>PASS or MISS (how much)"
goal() { goals+=("$1"$'\t'"$2"$'\t'"$3"$'\t'"$4"); }
wishlist() { # FILE REF...: a DUCC wishlist of plain-http images
  local f=$1 r
  shift
  {
    echo "version: 1"
    echo "user: bench"
    echo "cvmfs_repo: 'bench.example.org'"
    echo "input:"
    for r; do echo "  - 'http://$r'"; done
  } >"$f"
}
convert() { # LOG ARGS...: flatbed convert, failing the bench with its log
  local log=$1
  shift
  "$FLATBED" convert "$@" >"$log" 2>&1 || { tail -40 "$log" >&2; die "flatbed convert $* failed (log above)"; }
}
measure_convert() { # NAME LOG ARGS...: convert under GNU time
  local name=$1 log=$2
  shift 2
  measure "$name" "$FLATBED" convert "$@" >"$log" 2>&1 || { tail -40 "$log" >&2; die "flatbed convert $* failed (log above)"; }
}
measure_peer() { # NAME TOOL DIR REF...
  local name=$1 tool=$2 dir=$3
  shift 3
  mkdir -p "$dir"
  measure "$name" scripts/bench.sh --peer "$tool" "$dir" "$@" >"$dir.log" 2>&1 ||
    { tail -20 "$dir.log" >&2; die "$tool on $* failed (log above)"; }
}
# compare SET RUN WISHLIST MIB REF...: one run of every tool on the images, into RUN: flatbed
# convert cold (fresh store) and, for the classic set, warm (again); skopeo+umoci; crane. Each
# output must hold MIB MiB of files (a tool that did nothing would win).
compare() {
  local set=$1 run=$2 wl=$3 want=$4 d
  shift 4
  mkdir -p "$run"
  sync
  measure_convert "${set}_cold" "$run/cold.log" "$wl" --store-root "$run/fb" --state-dir "$run/fb-state" -i
  if [ "$set" = a ]; then
    sync
    measure_convert a_warm "$run/warm.log" "$wl" --store-root "$run/fb" --state-dir "$run/fb-state" -i
  fi
  sync
  measure_peer "${set}_umoci" umoci "$run/umoci" "$@"
  if [ -n "$crane" ]; then
    sync
    measure_peer "${set}_crane" crane "$run/crane" "$@"
  fi
  for d in fb umoci ${crane:+crane}; do sane "$run/$d" "$want" "$d"; done
  clean "$run"
}
clean() { [ -n "${BENCH_KEEP:-}" ] || { chmod -R u+rwX "$@" 2>/dev/null || true; rm -rf "$@"; }; }
hwm() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; } # peak RSS KiB of a live process
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

# --- registry ---------------------------------------------------------------------------

# http_status PORT PATH: the status line of GET PATH on 127.0.0.1:PORT (bash /dev/tcp: no curl).
http_status() (
  exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
  IFS= read -r -t 5 status <&3 || exit 1
  echo "$status"
)
access=$tmp/registry/access.log
start_registry() {
  local port=$1 dir=$tmp/registry
  rm -rf "$dir" && mkdir -p "$dir/storage"
  cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: flatbed-bench
EOF
  docker-registry serve "$dir/config.yml" >"$access" 2>"$dir/registry.log" &
  reg_pid=$!
  local i
  for ((i = 0; i < 400; i++)); do # 20 s
    kill -0 "$reg_pid" 2>/dev/null || { wait "$reg_pid" 2>/dev/null || true; return 1; }
    [[ $(http_status "$port" /v2/ 2>/dev/null) == "HTTP/1."?" 200"* ]] && { pids+=("$reg_pid"); return 0; }
    sleep 0.05
  done
  kill "$reg_pid" 2>/dev/null || true
  wait "$reg_pid" 2>/dev/null || true
  return 1
}
host=""
for attempt in 1 2 3 4 5; do
  port=$(free_port)
  if start_registry "$port"; then
    host=127.0.0.1:$port
    break
  fi
done
[ -n "$host" ] || { cat "$tmp/registry/registry.log" >&2 || true; die "docker-registry did not start"; }
say "docker-registry on $host (pid $reg_pid), access log $access"

# mark: sends a marker request and waits until the access log shows it; marked is its line
# number. The registry logs a request after answering it, so what a client finished before
# the marker was sent is logged before the marker's line.
marks=0 marked=0
mark() {
  marks=$((marks + 1))
  http_status "$port" "/v2/?bench-marker=$marks" >/dev/null
  local i n
  for ((i = 0; i < 400; i++)); do
    n=$(grep -n "bench-marker=$marks " "$access" | cut -d: -f1)
    [ -n "$n" ] && { marked=$n; return; }
    sleep 0.025
  done
  die "marker $marks not in the registry's access log"
}
# requests FROM TO: the access log's requests between two marker lines, one a line:
# METHOD KIND STATUS BYTES PATH (KIND: ping, manifest, blob, upload, other).
requests() {
  awk -v a="$1" -v b="$2" 'NR > a && NR < b && !/bench-marker=/ {
    split($0, q, "\""); split(q[2], r, " "); split(q[3], s, " ")
    kind = "other"
    if (r[2] == "/v2/") kind = "ping"
    else if (r[2] ~ /\/manifests\//) kind = "manifest"
    else if (r[2] ~ /\/blobs\/uploads/) kind = "upload"
    else if (r[2] ~ /\/blobs\//) kind = "blob"
    print r[1], kind, s[1], s[2], r[2]
  }' "$access"
}
# counted NAME LOG OUT ARGS...: measure_convert between two marks; the registry requests it
# made go to OUT (see requests).
counted() {
  local name=$1 log=$2 out=$3 a
  shift 3
  mark
  a=$marked
  measure_convert "$name" "$log" "$@"
  mark
  requests "$a" "$marked" >"$out"
}
breakdown() { awk '{ n[$1 " " $2]++ } END { for (k in n) printf "%s%d %s", (i++ ? ", " : ""), n[k], k; print "" }'; }

# push NAME FLAGS...: pushes a set of images (benchimages -set NAME); refs holds their
# references, $tmp/NAME.layers "DIGEST SIZE" of each of their layers.
push() {
  local set=$1
  shift
  "$tmp/bin/benchimages" -set "$set" -layers-out "$tmp/$set.layers" -tmp "$tmp" "$@" "$host" >"$tmp/$set.refs" ||
    die "benchimages -set $set $* failed"
  mapfile -t refs <"$tmp/$set.refs"
  [ ${#refs[@]} -gt 0 ] || die "benchimages -set $set pushed no image"
}
layer_bytes() { awk '{ s += $2 } END { print s + 0 }' "$tmp/$1.layers"; } # SET: compressed bytes of its layers

# --- A. classic -------------------------------------------------------------------------

section_classic() {
  say "A: pushing the demo images and $IMAGES random images ($LAYERS layers x $LAYER_MIB MiB)"
  local refs i n want=$((IMAGES * LAYERS * LAYER_MIB))
  push classic -images "$IMAGES" -layers "$LAYERS" -layer-mib "$LAYER_MIB"
  n=${#refs[@]}
  wishlist "$tmp/classic.yaml" "${refs[@]}"
  for ((i = 1; i <= RUNS; i++)); do
    say "A: run $i/$RUNS: flatbed convert cold, warm; skopeo+umoci; crane"
    compare a "$tmp/classic$i" "$tmp/classic.yaml" "$want" "${refs[@]}"
  done

  local base
  base=$(med a_cold)
  vs() { # NAME: "N.Nx slower/faster" than flatbed cold (medians)
    awk -v t="$(med "$1")" -v b="$base" 'BEGIN {
      if (b <= 0 || t <= 0) { print "n/a"; exit }
      r = t / b
      if (r >= 0.95 && r <= 1.05) printf "about the same (%.2fx)\n", r
      else if (r > 1) printf "%.1fx slower\n", r; else printf "%.1fx faster\n", 1 / r
    }'
  }
  row() { printf '%-16s %6s %8s  %-11s  %-22s %s\n' "$@"; }
  echo "A. classic: $n images ($((n - IMAGES)) demo + $IMAGES random x $LAYERS layers x $LAYER_MIB MiB = $want MiB)," \
    "median of $RUNS"
  echo
  row tool images seconds range "vs flatbed cold" "peak RSS"
  row ---- ------ ------- ----- --------------- --------
  row "flatbed (cold)" "$n" "$base" "$(rng a_cold)" "1.0x (baseline)" "$(peak a_cold)"
  row "skopeo+umoci" "$n" "$(med a_umoci)" "$(rng a_umoci)" "$(vs a_umoci)" "$(peak a_umoci)"
  if [ -n "$crane" ]; then
    row "crane" "$n" "$(med a_crane)" "$(rng a_crane)" "$(vs a_crane)" "$(peak a_crane)"
  else
    row "crane" "$n" - - "skipped (no crane)" -
  fi
  row "flatbed (warm)" "$n" "$(med a_warm)" "$(rng a_warm)" "$(vs a_warm)" "$(peak a_warm)"
  echo
  echo "Work differs: flatbed cold starts its embedded NATS server and writes each layer unpacked"
  echo "(.layers) plus the flat tree (.flat, hard links to the layers' files) and metadata;"
  echo "skopeo+umoci writes the compressed blobs (OCI layout) plus the flat tree; crane writes only"
  echo "the flat tree. Warm: everything already converted."
  echo
}

# --- B. big: the cold-convert goal -------------------------------------------------------

big_ref=""
section_big() {
  say "B: pushing one image of $BIG_LAYERS layers, $BIG_MIB MiB in about $BIG_FILES entries"
  local refs
  push big -layers "$BIG_LAYERS" -mib "$BIG_MIB" -files "$BIG_FILES"
  big_ref=${refs[0]}
  wishlist "$tmp/big.yaml" "$big_ref"
  local i
  for ((i = 1; i <= RUNS; i++)); do
    say "B: run $i/$RUNS: flatbed convert cold; skopeo+umoci; crane"
    compare b "$tmp/big$i" "$tmp/big.yaml" $((BIG_MIB * 95 / 100)) "$big_ref"
  done
  local mb fb r_umoci r_crane
  mb=$(awk -v b="$(layer_bytes big)" 'BEGIN { printf "%.1f", b / 1e6 }')
  fb=$(med b_cold)
  r_umoci=$(ratio "$fb" "$(med b_umoci)")
  r_crane=n/a
  [ -n "$crane" ] && r_crane=$(ratio "$fb" "$(med b_crane)")
  row() { printf '%-16s %8s  %-11s  %-11s  %-12s  %-8s %-5s %s\n' "$@"; }
  echo "B. cold convert: $big_ref, $BIG_LAYERS layers, $mb MB compressed, $BIG_MIB MiB in about $BIG_FILES" \
    "files and directories; median of $RUNS"
  echo
  row tool seconds range user+sys "flatbed/tool" goal "" "peak RSS"
  row ---- ------- ----- -------- ------------ ---- "" --------
  row "flatbed -i" "$fb" "$(rng b_cold)" "$(cpu b_cold)" - - "" "$(peak b_cold)"
  row "skopeo+umoci" "$(med b_umoci)" "$(rng b_umoci)" "$(cpu b_umoci)" "${r_umoci}x" "<= 0.40x" "$(verdict le "$r_umoci" 0.40)" "$(peak b_umoci)"
  if [ -n "$crane" ]; then
    row "crane | tar -x" "$(med b_crane)" "$(rng b_crane)" "$(cpu b_crane)" "${r_crane}x" "<= 0.50x" "$(verdict le "$r_crane" 0.50)" "$(peak b_crane)"
  fi
  echo
  goal "cold convert vs skopeo copy + umoci raw unpack" "${r_umoci}x ($fb s vs $(med b_umoci) s)" "<= 0.40x" \
    "$(verdict le "$r_umoci" 0.40)$(by "$r_umoci" 0.40 x)"
  goal "cold convert vs crane export | tar -x" "${r_crane}x ($fb s vs $(med b_crane) s)" "<= 0.50x" \
    "$(verdict le "$r_crane" 0.50)$(by "$r_crane" 0.50 x)"
  if [ "$PROFILE" = 1 ] || { [ "$PROFILE" = auto ] && ! { le "$r_umoci" 0.40 && le "$r_crane" 0.50; }; }; then
    profile_big
  fi
}
by() { # VALUE GOAL UNIT: " (by N.NNx the goal)" when VALUE is over GOAL
  awk -v v="$1" -v g="$2" 'BEGIN { if (v != "n/a" && v + 0 > g + 0 && g > 0) printf " (%.2fx the goal)", v / g }'
}

# profile_big: one more cold convert of the big image under perf (flatbed has no profiling
# flag); the top functions by samples, user ([.]) and kernel ([k]).
profile_big() {
  if ! command -v perf >/dev/null 2>&1; then
    echo "(no perf installed: no CPU profile of the cold convert)"
    echo
    return
  fi
  say "B: profiling one more cold convert with perf record"
  local run=$tmp/big-profile
  mkdir -p "$run"
  sync
  perf record -F 999 -o "$run/perf.data" -- "$FLATBED" convert "$tmp/big.yaml" --store-root "$run/fb" --state-dir "$run/fb-state" -i \
    >"$run/fb.log" 2>"$run/perf.log" || { tail -20 "$run/perf.log" >&2; echo "(perf record failed: no profile)"; return; }
  echo "CPU profile of one cold convert of $big_ref (perf record -F 999, all threads; perf report"
  echo "--no-children --sort sym: the functions with most samples, [k] kernel, [.] flatbed):"
  echo
  perf report -i "$run/perf.data" --stdio --no-children --sort sym --percent-limit 0.7 2>/dev/null |
    awk '/^ +[0-9.]+%/ { printf "    %7s  %s %s\n", $1, $2, $3 }' | head -25
  echo
  clean "$run"
}

# --- C. rerun: unchanged wishlist --------------------------------------------------------

section_rerun() {
  say "C: pushing $WL_IMAGES small images, each in its own repository"
  local refs i n
  push wishlist -images "$WL_IMAGES"
  wishlist "$tmp/rerun.yaml" "${refs[@]}"
  local run=$tmp/rerun
  mkdir -p "$run"
  sync
  say "C: converting them once (cold), then again $RUNS times (unchanged)"
  measure_convert c_cold "$run/cold.log" "$tmp/rerun.yaml" --store-root "$run/fb" --state-dir "$run/fb-state" -i
  for ((i = 1; i <= RUNS; i++)); do
    sync
    counted c_rerun "$run/rerun$i.log" "$run/requests$i" "$tmp/rerun.yaml" --store-root "$run/fb" --state-dir "$run/fb-state" -i
    wc -l <"$run/requests$i" >>"$tmp/m/c_requests"
  done
  n=${#refs[@]}
  local req wall per
  req=$(median <"$tmp/m/c_requests")
  wall=$(med c_rerun)
  per=$(awk -v r="$req" -v n="$n" 'BEGIN { printf "%.2f", r / n }')
  row() { printf '%-22s %8s  %-11s  %8s  %9s  %s\n' "$@"; }
  echo "C. unchanged wishlist: $n images on 1 registry, converted once, then again $RUNS times (same store and state);"
  echo "   registry requests counted in the access log between two marker requests"
  echo
  row run seconds range requests "per image" "peak RSS"
  row --- ------- ----- -------- --------- --------
  row "flatbed cold (once)" "$(med c_cold)" - - - "$(peak c_cold)"
  row "flatbed re-run" "$wall" "$(rng c_rerun)" "$req" "$per" "$(peak c_rerun)"
  echo
  echo "   requests of re-run 1: $(breakdown <"$run/requests1")"
  [ "$(sort -u "$tmp/m/c_requests" | wc -l)" -eq 1 ] || echo "   requests per re-run: $(tr '\n' ' ' <"$tmp/m/c_requests")"
  echo
  local maxreq=$((n + 1))
  goal "unchanged $n-image re-run: registry requests" "$req ($per per image)" "<= $maxreq" \
    "$(verdict le "$req" "$maxreq")$(awk -v r="$req" -v m="$maxreq" 'BEGIN { if (r > m) printf " (%d over)", r - m }')"
  goal "unchanged $n-image re-run: wall time" "$wall s" "< 2 s" "$(verdict lt "$wall" 2)$(by "$wall" 2 s)"
  clean "$run"
}

# --- D. shared base ----------------------------------------------------------------------

section_shared() {
  say "D: pushing $SH_IMAGES images on one base ($SH_BASE_MIB MiB in 2 layers, $SH_LAYER_MIB MiB of their own)"
  local refs
  push shared -images "$SH_IMAGES" -base-mib "$SH_BASE_MIB" -layer-mib "$SH_LAYER_MIB"
  wishlist "$tmp/shared.yaml" "${refs[@]}"
  local run=$tmp/shared
  mkdir -p "$run"
  sync
  say "D: converting them cold"
  counted d_cold "$run/cold.log" "$run/requests" "$tmp/shared.yaml" --store-root "$run/fb" --state-dir "$run/fb-state" -i
  local uniq ulayers fetched gets configs r
  sort -u "$tmp/shared.layers" >"$run/unique"
  ulayers=$(wc -l <"$run/unique")
  uniq=$(awk '{ s += $2 } END { print s + 0 }' "$run/unique")
  # Layer GETs: blob GETs of the images' layers (any answer with a body); other blob GETs are configs.
  read -r gets fetched configs < <(awk 'NR == FNR { layer["/blobs/" $1] = 1; next }
    $1 == "GET" && $2 == "blob" {
      d = substr($5, index($5, "/blobs/"))
      if (d in layer) { n++; s += $4 } else c++
    } END { print n + 0, s + 0, c + 0 }' "$run/unique" "$run/requests")
  r=$(awk -v f="$fetched" -v u="$uniq" 'BEGIN { if (u > 0) printf "%.2f", f / u; else print "n/a" }')
  echo "D. $SH_IMAGES images on one base, cold: blob GETs and their response sizes from the access log"
  echo
  printf '   unique layers %d, %.1f MB; layer GETs %d, %.1f MB fetched; fetched/unique %s; config GETs %d\n' \
    "$ulayers" "$(awk -v u="$uniq" 'BEGIN { print u / 1e6 }')" "$gets" "$(awk -v f="$fetched" 'BEGIN { print f / 1e6 }')" "$r" "$configs"
  printf '   flatbed convert: %s s, user+sys %s s, peak RSS %s\n' "$(med d_cold)" "$(cpu d_cold)" "$(peak d_cold)"
  echo
  goal "$SH_IMAGES images sharing a base: bytes fetched / unique layer bytes" "$r" "1.00" "$(verdict [ "$r" = 1.00 ])"
  clean "$run"
}

# --- E. huge layer ------------------------------------------------------------------------

section_huge() {
  say "E: pushing an image with a $HUGE_MIB MiB layer of pseudo-random bytes"
  local refs ref run=$tmp/huge
  push huge -mib "$HUGE_MIB"
  ref=${refs[0]}
  wishlist "$tmp/huge.yaml" "$ref"
  mkdir -p "$run"
  sync
  say "E: flatbed convert cold"
  measure_convert e_fb "$run/fb.log" "$tmp/huge.yaml" --store-root "$run/fb" --state-dir "$run/fb-state" -i
  sane "$run/fb" "$HUGE_MIB" flatbed
  clean "$run/fb" "$run/fb-state"
  if [ "$HUGE_PEERS" = 1 ]; then
    sync
    say "E: skopeo+umoci"
    measure_peer e_umoci umoci "$run/umoci" "$ref"
    clean "$run/umoci"
    if [ -n "$crane" ]; then
      sync
      say "E: crane | tar -x"
      measure_peer e_crane crane "$run/crane" "$ref"
      clean "$run/crane"
    fi
  fi
  local mb
  mb=$(awk -v b="$(layer_bytes huge)" 'BEGIN { printf "%.0f", b / 1048576 }')
  row() { printf '%-16s %8s  %-11s  %s\n' "$@"; }
  echo "E. huge layer: $ref, one layer of $mb MiB compressed ($HUGE_MIB MiB file of pseudo-random bytes); one run"
  echo
  row tool seconds user+sys "peak RSS"
  row ---- ------- -------- --------
  row "flatbed -i" "$(med e_fb)" "$(cpu e_fb)" "$(peak e_fb)"
  [ -f "$tmp/m/e_umoci" ] && row "skopeo+umoci" "$(med e_umoci)" "$(cpu e_umoci)" "$(peak e_umoci)"
  [ -f "$tmp/m/e_crane" ] && row "crane | tar -x" "$(med e_crane)" "$(cpu e_crane)" "$(peak e_crane)"
  echo
  local mib
  mib=$(col e_fb 4 | sort -n | tail -1 | awk '{ printf "%.0f", $1 / 1024 }')
  goal "peak RSS converting an image with a $HUGE_MIB MiB layer" "$mib MiB" "< 256 MiB" "$(verdict lt "$mib" 256)$(by "$mib" 256 MiB)"
}

# --- F. event hop ------------------------------------------------------------------------

section_hop() {
  say "F: go test -bench EventHop ($HOP_N hops)"
  (cd events && "$GO" test -run '^$' -bench '^BenchmarkEventHop$' -benchtime "${HOP_N}x" -count 1 ./bus) >"$tmp/hop.log" 2>&1 ||
    { cat "$tmp/hop.log" >&2; die "BenchmarkEventHop failed"; }
  local p50 p99 pmax
  read -r p50 p99 pmax < <(awk '/^BenchmarkEventHop/ {
      for (i = 1; i < NF; i++) { if ($(i+1) == "p50-ms") a = $i; if ($(i+1) == "p99-ms") b = $i; if ($(i+1) == "max-ms") c = $i }
    } END { print a, b, c }' "$tmp/hop.log")
  echo "F. event hop (events/bus BenchmarkEventHop: wish.submitted in, handler, image.resolved out, embedded"
  echo "   server on loopback TCP), $HOP_N hops one at a time"
  echo
  printf '   p50 %s ms, p99 %s ms, max %s ms\n' "$p50" "$p99" "$pmax"
  echo
  goal "event hop p99" "$p99 ms (p50 $p50 ms)" "< 2 ms" "$(verdict lt "$p99" 2)$(by "$p99" 2 ms)"
  if [ "$PROFILE" = 1 ] || { [ "$PROFILE" = auto ] && ! lt "$p99" 2; }; then
    say "F: profiling the benchmark (go test -cpuprofile)"
    (cd events && "$GO" test -run '^$' -bench '^BenchmarkEventHop$' -benchtime "${HOP_N}x" -count 1 \
      -cpuprofile "$tmp/hop.pprof" -o "$tmp/bus.test" ./bus) >"$tmp/hop-profile.log" 2>&1 ||
      { cat "$tmp/hop-profile.log" >&2; die "BenchmarkEventHop -cpuprofile failed"; }
    echo "   CPU profile of the benchmark process (go test -cpuprofile, BenchmarkEventHop: server, bus and"
    echo "   reader in one process; go tool pprof -top, flat):"
    echo
    "$GO" tool pprof -top -nodecount 15 "$tmp/bus.test" "$tmp/hop.pprof" 2>/dev/null | sed -n '/flat%/,$p' | sed 's/^/    /'
    echo
  fi
}

# --- G. scale-out -------------------------------------------------------------------------

# serve_ready LOG PID: waits until `flatbed serve` logged "serving".
serve_ready() {
  local i
  for ((i = 0; i < 1200; i++)); do # 60 s
    grep -q '"msg":"serving"' "$1" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { tail -20 "$1" >&2; die "flatbed serve exited before it was ready (log above)"; }
    sleep 0.05
  done
  tail -20 "$1" >&2
  die "flatbed serve not ready within 60s (log above)"
}

# scale_run W WISHLIST: one conversion of the wishlist with W ingester processes; appends to
# the series g_W and g_W_ingester_kib.
scale_run() {
  local w=$1 wl=$2 run=$tmp/scale$1 nport nats i p
  mkdir -p "$run"
  nport=$(free_port)
  nats=nats://127.0.0.1:$nport
  "$tmp/bin/nats-server" -js -sd "$run/nats" -a 127.0.0.1 -p "$nport" >"$run/nats.log" 2>&1 &
  local nats_pid=$!
  pids+=("$nats_pid")
  for ((i = 0; i < 400; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$nport") 2>/dev/null && break
    sleep 0.05
  done
  local serve=("$FLATBED" serve --nats "$nats" --store-root "$run/store" --metrics-addr 127.0.0.1:0)
  "${serve[@]}" --state-dir "$run/state-others" resolver flattener thinpusher relocator notifier >"$run/others.log" 2>&1 &
  local others=$!
  pids+=("$others")
  local ing=()
  for ((i = 1; i <= w; i++)); do
    "${serve[@]}" --state-dir "$run/state-ingester$i" ${SC_JOBS:+--max-concurrent-downloads "$SC_JOBS"} ingester >"$run/ingester$i.log" 2>&1 &
    ing+=($!)
    pids+=($!)
  done
  serve_ready "$run/others.log" "$others"
  for ((i = 1; i <= w; i++)); do serve_ready "$run/ingester$i.log" "${ing[$((i - 1))]}"; done
  sync
  measure_convert "g_$w" "$run/convert.log" "$wl" --nats "$nats" --store-root "$run/store" -i --timeout 20m
  local top=0 k
  for p in "${ing[@]}"; do
    k=$(hwm "$p")
    [ "$k" -gt "$top" ] && top=$k
  done
  echo "$top" >>"$tmp/m/g_${w}_ingester_kib"
  hwm "$others" >>"$tmp/m/g_${w}_others_kib"
  stop "${ing[@]}" "$others"
  stop "$nats_pid"
  clean "$run"
}

section_scale() {
  say "G: pushing $SC_IMAGES images ($SC_LAYERS layers x $SC_LAYER_KIB KiB), starting the latency proxy ($SC_DELAY, $SC_RATE bytes/s per request)"
  local refs w
  push scale -images "$SC_IMAGES" -layers "$SC_LAYERS" -layer-kib "$SC_LAYER_KIB"
  "$tmp/bin/latencyproxy" -delay "$SC_DELAY" -rate "$SC_RATE" "$host" >"$tmp/proxy.out" 2>"$tmp/proxy.log" &
  local proxy_pid=$!
  pids+=("$proxy_pid")
  local proxy="" i
  for ((i = 0; i < 200; i++)); do
    proxy=$(head -1 "$tmp/proxy.out")
    [ -n "$proxy" ] && break
    sleep 0.05
  done
  [ -n "$proxy" ] || { cat "$tmp/proxy.log" >&2; die "latencyproxy did not start"; }
  wishlist "$tmp/scale.yaml" "${refs[@]/#$host/$proxy}"
  for ((i = 1; i <= RUNS; i++)); do
    for w in $SC_WORKERS; do
      say "G: run $i/$RUNS: $w ingester process(es)"
      scale_run "$w" "$tmp/scale.yaml"
    done
  done
  stop "$proxy_pid"
  local n=${#refs[@]} base="" t ipm r first="" last=""
  row() { printf '%-10s %6s %8s  %-11s  %10s  %-6s  %s\n' "$@"; }
  echo "G. scale-out: $n images x $SC_LAYERS layers x $SC_LAYER_KIB KiB through a proxy adding $SC_DELAY to every request"
  echo "   and sending each answer at $SC_RATE bytes/s; W 'flatbed serve ingester' processes" \
    "(--max-concurrent-downloads ${SC_JOBS:-default}),"
  echo "   one 'flatbed serve' of the other stages, one nats-server; 'flatbed convert --nats' timed; median of $RUNS"
  echo
  row ingesters images seconds range images/min "vs 1" "peak RSS (largest ingester; other stages)"
  row --------- ------ ------- ----- ---------- ---- -----------------------------------------
  for w in $SC_WORKERS; do
    t=$(med "g_$w")
    ipm=$(awk -v n="$n" -v t="$t" 'BEGIN { printf "%.0f", n / t * 60 }')
    [ -z "$base" ] && { base=$ipm; first=$w; }
    r=$(ratio "$ipm" "$base")
    last=$w
    eval "ipm_$w=$ipm"
    row "$w" "$n" "$t" "$(rng "g_$w")" "$ipm" "${r}x" \
      "$(sort -n "$tmp/m/g_${w}_ingester_kib" | tail -1 | awk '{ printf "%.0f MiB", $1 / 1024 }'); $(sort -n "$tmp/m/g_${w}_others_kib" | tail -1 | awk '{ printf "%.0f MiB", $1 / 1024 }')"
  done
  echo
  local sr
  sr=$(ratio "$(eval echo "\$ipm_$last")" "$base")
  goal "$last ingesters vs $first behind the latency proxy" "${sr}x ($(eval echo "\$ipm_$last") vs $base images/min)" ">= 3x" \
    "$(verdict ge "$sr" 3)"
}

# --- H. Go benchmarks ---------------------------------------------------------------------

section_gobench() {
  sync
  say "H: Go benchmarks (pkg: layer, flatten)"
  echo "H. Go benchmarks of the hot paths (pkg/layer, pkg/flatten)"
  echo
  (cd pkg && "$GO" test -run='^$' -bench=. -benchtime=3x ./layer ./flatten)
  echo
}

# --- I. lazy-pull conversion -----------------------------------------------------------------

section_lazy() {
  if [ -z "$big_ref" ]; then
    say "I: pushing one image of $BIG_LAYERS layers, $BIG_MIB MiB in about $BIG_FILES entries"
    local refs
    push big -layers "$BIG_LAYERS" -mib "$BIG_MIB" -files "$BIG_FILES"
    big_ref=${refs[0]}
  fi
  local repo=${big_ref%:*} tag=${big_ref##*:} i run load0
  load0=$(uptime | sed 's/.*load average: //')
  for ((i = 1; i <= RUNS; i++)); do
    run=$tmp/lazy$i
    mkdir -p "$run"
    say "I: run $i/$RUNS: flatbed lazy --format estargz, then zstd-chunked (fresh state each); crane copy; crane pull + push"
    sync
    measure i_lazy "$FLATBED" lazy -r "$repo" -i "$tag" -o "$tag-esgz$i" --plain --state-dir "$run/state" --store-root "$run/store" -d "$run" \
      >"$run/lazy.log" 2>&1 || { tail -40 "$run/lazy.log" >&2; die "flatbed lazy $big_ref failed (log above)"; }
    sync
    measure i_zstd "$FLATBED" lazy -r "$repo" -i "$tag" -o "$tag-zstd$i" --format zstd-chunked --plain --state-dir "$run/zstate" --store-root "$run/zstore" -d "$run" \
      >"$run/zstd.log" 2>&1 || { tail -40 "$run/zstd.log" >&2; die "flatbed lazy --format zstd-chunked $big_ref failed (log above)"; }
    if [ -n "$crane" ]; then
      sync
      measure i_crane "$crane" copy --insecure "$big_ref" "${repo}-copy$i:$tag" >"$run/crane.log" 2>&1 ||
        { tail -20 "$run/crane.log" >&2; die "crane copy $big_ref failed (log above)"; }
      sync
      # Every byte out of the registry and back into a new repository, nothing converted: a
      # local OCI layout has no source repository to mount from.
      measure i_io sh -c '"$1" pull --insecure --format oci "$2" "$3" && "$1" push --insecure "$3" "$4"' sh \
        "$crane" "$big_ref" "$run/oci" "${repo}-io$i:$tag" >"$run/io.log" 2>&1 ||
        { tail -20 "$run/io.log" >&2; die "crane pull + push $big_ref failed (log above)"; }
    fi
    clean "$run"
  done
  local mb content fb scaled scaled_u r_obd r_obd_u r_crane=n/a r_io=n/a
  mb=$(awk -v b="$(layer_bytes big)" 'BEGIN { printf "%.1f", b / 1e6 }')
  content=$(awk -v m="$BIG_MIB" 'BEGIN { printf "%.1f", m * 1048576 / 1e6 }')
  fb=$(med i_lazy)
  scaled=$(awk -v m="$mb" 'BEGIN { printf "%.2f", m / 567 * 13 }')        # overlaybd's convertor: 567 MB in 13 s
  scaled_u=$(awk -v m="$content" 'BEGIN { printf "%.2f", m / 567 * 13 }') # the same, were 567 MB uncompressed
  r_obd=$(ratio "$fb" "$scaled")
  r_obd_u=$(ratio "$fb" "$scaled_u")
  if [ -n "$crane" ]; then
    r_crane=$(ratio "$fb" "$(med i_crane)")
    r_io=$(ratio "$fb" "$(med i_io)")
  fi
  row() { printf '%-40s %8s  %-11s  %-11s  %-10s %s\n' "$@"; }
  echo "I. lazy-pull conversion: $big_ref, $mb MB compressed ($content MB of file content), every layer converted; median of $RUNS"
  echo "   load (1, 5, 15 min) at the start of I: $load0; at its end:$(uptime | sed 's/.*load average://')"
  echo
  row tool seconds range user+sys "lazy/tool" "peak RSS"
  row ---- ------- ----- -------- --------- --------
  row "flatbed lazy --format estargz" "$fb" "$(rng i_lazy)" "$(cpu i_lazy)" - "$(peak i_lazy)"
  row "flatbed lazy --format zstd-chunked" "$(med i_zstd)" "$(rng i_zstd)" "$(cpu i_zstd)" "$(ratio "$fb" "$(med i_zstd)")x" "$(peak i_zstd)"
  if [ -n "$crane" ]; then
    row "crane copy (mounts, moves no layer)" "$(med i_crane)" "$(rng i_crane)" "$(cpu i_crane)" "${r_crane}x" "$(peak i_crane)"
    row "crane pull + push (all bytes, as is)" "$(med i_io)" "$(rng i_io)" "$(cpu i_io)" "${r_io}x" "$(peak i_io)"
  fi
  row "overlaybd convertor, by compressed size" "$scaled" - - "${r_obd}x" "(published: 567 MB in 13 s)"
  row "  the same, by file content" "$scaled_u" - - "${r_obd_u}x" "(were its 567 MB uncompressed)"
  echo
  cat <<EOF
What is compared. flatbed lazy (a fresh state, so no layer is reused) reads every layer,
checks its digest and diff ID, gunzips it, writes it as eStargz (a gzip member per file chunk,
klauspost/compress's gzip at level 3, a TOC, the no-prefetch landmark), opens the result
as stargz-snapshotter does and pushes it, then the config and manifest; the user+sys column is
its process alone (the registry's work is not in it). crane copy within one registry mounts
every blob into the new repository (no layer byte moves): the floor of a re-tag. crane pull +
push moves every byte out and back in, converting nothing: the floor of any conversion that
pulls and pushes. overlaybd's figure is its README's "php-laravel-nginx, 567 MB, 13 s" for its
standalone convertor with its customised libext2fs: another format (overlaybd's ext4 block
images, written by libext2fs), a machine and registry it does not describe, and an "image
size" it does not say is compressed or not; the goal scales it by this image's compressed
size, the row under it by its file content, which is kinder to flatbed if overlaybd's 567 MB
were uncompressed. On this machine every process shares 2 CPUs with other work: a wall time
under load (see the load above) is the CPU time spread over what was left of the 2 CPUs.
EOF
  echo
  goal "lazy (eStargz) vs overlaybd convertor's 567 MB/13 s, scaled" "${r_obd}x ($fb s vs $scaled s)" "<= 1.00x" \
    "$(verdict le "$r_obd" 1.00)$(by "$r_obd" 1.00 x)"
}

# --- run ------------------------------------------------------------------------------------

for s in classic big rerun shared huge hop scale lazy; do
  wants "$s" && "section_$s"
done

echo "Goals (issues 9 and 13)$([ -n "${BENCH_QUICK:-}" ] && echo ": BENCH_QUICK sizes, not the goals' cases")"
echo
printf '%-62s %-38s %-10s %s\n' goal measured target result
printf '%-62s %-38s %-10s %s\n' ---- -------- ------ ------
for g in "${goals[@]}"; do
  IFS=$'\t' read -r name measured target result <<<"$g"
  printf '%-62s %-38s %-10s %s\n' "$name" "$measured" "$target" "$result"
done
echo
echo "load at end:$(uptime | sed 's/.*load average://') (1, 5, 15 min; $(nproc) CPUs, shared with other work)"
echo

wants gobench && section_gobench
exit 0
