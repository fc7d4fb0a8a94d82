#!/usr/bin/env bash
# `make bench`: flatbed against its peers on the same images, in one run, with ratios.
#
# Starts docker-registry on a free loopback port, pushes the demo images and a few bigger
# pseudo-random ones (e2e/cmd/benchimages, deterministic), then measures the wall time of
# getting an unpacked root file system of every image with:
#   flatbed cold   bin/flatbed convert of a wishlist with all images into a fresh store
#   flatbed warm   the same command again (everything already converted)
#   skopeo+umoci   per image: skopeo copy docker://REF oci:DIR:TAG; umoci raw unpack (summed)
#   crane          per image: crane export REF - | tar -x (summed)
# and finally the Go benchmarks of the hot paths (pkg/layer, pkg/flatten).
#
# Every measurement runs BENCH_RUNS times into fresh directories; the table shows medians.
# Knobs (environment): BENCH_IMAGES (4), BENCH_LAYERS (4), BENCH_LAYER_MIB (8), BENCH_RUNS (3),
# BENCH_KEEP (set: keep the outputs, and print where), GO (go).
# Needs bin/flatbed (make build), docker-registry, umoci, skopeo (scripts/install-test-deps.sh).
set -euo pipefail

cd "$(dirname "$0")/.."
GO=${GO:-go}
IMAGES=${BENCH_IMAGES:-4}
LAYERS=${BENCH_LAYERS:-4}
LAYER_MIB=${BENCH_LAYER_MIB:-8}
RUNS=${BENCH_RUNS:-3}
FLATBED=$PWD/bin/flatbed

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

[ -x "$FLATBED" ] || die "$FLATBED missing: run 'make build' (or 'make bench')"
scripts/install-test-deps.sh
for t in docker-registry umoci skopeo tar; do
  command -v "$t" >/dev/null 2>&1 || die "$t not found (scripts/install-test-deps.sh installs it)"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/flatbed-bench.XXXXXX")
reg_pid=""
cleanup() {
  if [ -n "$reg_pid" ]; then
    kill "$reg_pid" 2>/dev/null || true
    wait "$reg_pid" 2>/dev/null || true
  fi
  if [ -n "${BENCH_KEEP:-}" ]; then
    echo "bench: outputs kept in $tmp" >&2
    return
  fi
  chmod -R u+rwX "$tmp" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# crane, built from the module cache at the version the pkg module requires.
crane=""
say "building crane (go-containerregistry, from pkg's module graph)"
if (cd pkg && "$GO" build -o ../bin/crane github.com/google/go-containerregistry/cmd/crane) >"$tmp/crane-build.log" 2>&1; then
  crane=$PWD/bin/crane
else
  echo "bench: skipping crane: cmd/crane does not build from pkg's module graph:" >&2
  sed 's/^/  /' "$tmp/crane-build.log" >&2
fi

# --- registry ---------------------------------------------------------------------------

# probe PORT: does GET /v2/ on 127.0.0.1:PORT answer 200? (bash /dev/tcp: no curl needed)
probe() (
  exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
  printf 'GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
  IFS= read -r -t 2 status <&3 || exit 1
  [[ $status == "HTTP/1."?" 200"* ]]
)
# in_use PORT: does anything accept connections there?
in_use() ( exec 3<>"/dev/tcp/127.0.0.1/$1" ) 2>/dev/null

start_registry() {
  local port=$1 dir=$tmp/registry
  rm -rf "$dir" && mkdir -p "$dir/storage"
  cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
  formatter: text
  accesslog:
    disabled: true
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
  docker-registry serve "$dir/config.yml" >"$tmp/registry.out" 2>"$tmp/registry.log" &
  reg_pid=$!
  local i
  for ((i = 0; i < 400; i++)); do # 20 s
    kill -0 "$reg_pid" 2>/dev/null || { wait "$reg_pid" 2>/dev/null || true; reg_pid=""; return 1; }
    probe "$port" 2>/dev/null && return 0
    sleep 0.05
  done
  kill "$reg_pid" 2>/dev/null || true
  wait "$reg_pid" 2>/dev/null || true
  reg_pid=""
  return 1
}

host=""
for attempt in 1 2 3 4 5; do
  port=$((20000 + RANDOM % 40000))
  in_use "$port" && continue
  if start_registry "$port"; then
    host=127.0.0.1:$port
    break
  fi
done
[ -n "$host" ] || { cat "$tmp/registry.log" >&2 || true; die "docker-registry did not start"; }
say "docker-registry on $host (pid $reg_pid)"

# --- images -----------------------------------------------------------------------------

say "pushing the demo images and $IMAGES random images ($LAYERS layers x $LAYER_MIB MiB)"
(cd e2e && "$GO" run ./cmd/benchimages -images "$IMAGES" -layers "$LAYERS" -layer-mib "$LAYER_MIB" "$host") >"$tmp/refs" ||
  die "go run ./cmd/benchimages (in e2e/) failed"
mapfile -t refs <"$tmp/refs"
n=${#refs[@]}
[ "$n" -gt 0 ] || die "benchimages pushed no image"
printf '    %s\n' "${refs[@]}" >&2

# --- measurements -----------------------------------------------------------------------

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

wl=$tmp/wishlist.yaml
{
  echo "version: 1"
  echo "user: bench"
  echo "cvmfs_repo: 'bench.example.org'"
  echo "input:"
  for r in "${refs[@]}"; do echo "  - 'http://$r'"; done
} >"$wl"

# run_all R: one measurement of every tool into fresh directories under $tmp/runR.
run_all() {
  local run=$tmp/run$1 i t0
  mkdir -p "$run"
  fb_convert() { # LOG
    "$FLATBED" convert "$wl" --store-root "$run/fb" --state-dir "$run/fb-state" -i >"$1" 2>&1 ||
      { cat "$1" >&2; die "flatbed convert failed (log above)"; }
  }

  sync
  say "run $1/$RUNS: flatbed convert, cold (fresh store)"
  t0=$(now); fb_convert "$run/flatbed-cold.log"; t_cold+=("$(since "$t0")")

  sync
  say "run $1/$RUNS: flatbed convert, warm (already converted)"
  t0=$(now); fb_convert "$run/flatbed-warm.log"; t_warm+=("$(since "$t0")")

  sync
  say "run $1/$RUNS: skopeo copy + umoci raw unpack, per image"
  mkdir -p "$run/oci" "$run/umoci"
  t0=$(now)
  for i in "${!refs[@]}"; do
    skopeo copy -q --src-tls-verify=false "docker://${refs[$i]}" "oci:$run/oci:img$i" >"$run/skopeo.log" 2>&1 ||
      { cat "$run/skopeo.log" >&2; die "skopeo copy ${refs[$i]} failed"; }
    umoci raw unpack --image "$run/oci:img$i" "$run/umoci/img$i" >"$run/umoci.log" 2>&1 ||
      { cat "$run/umoci.log" >&2; die "umoci raw unpack ${refs[$i]} failed"; }
  done
  t_umoci+=("$(since "$t0")")

  if [ -n "$crane" ]; then
    sync
    say "run $1/$RUNS: crane export | tar -x, per image"
    t0=$(now)
    for i in "${!refs[@]}"; do
      mkdir -p "$run/crane/img$i"
      "$crane" export --insecure "${refs[$i]}" - 2>"$run/crane.log" | tar -x -C "$run/crane/img$i" ||
        { cat "$run/crane.log" >&2; die "crane export ${refs[$i]} failed"; }
    done
    t_crane+=("$(since "$t0")")
  fi

  # Sanity: every tool produced the big random files (a tool that did nothing would win).
  local d got
  for d in fb umoci ${crane:+crane}; do
    got=$(mib_of "$run/$d")
    [ "$got" -ge "$want_mib" ] || die "$d output holds $got MiB of files, want at least $want_mib MiB"
  done
  [ -n "${BENCH_KEEP:-}" ] || { chmod -R u+rwX "$run" 2>/dev/null || true; rm -rf "$run"; }
}
mib_of() { # total MiB of regular files under $1 (hard links counted once)
  find "$1" -type f -printf '%i %s\n' 2>/dev/null | sort -u | awk '{ s += $2 } END { printf "%.0f", s / 1048576 }'
}
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
spread() { printf '%s\n' "$@" | sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s-%s", lo, hi }'; }

want_mib=$((IMAGES * LAYERS * LAYER_MIB))
t_cold=() t_warm=() t_umoci=() t_crane=()
for ((r = 1; r <= RUNS; r++)); do run_all "$r"; done
m_cold=$(median "${t_cold[@]}")

# --- report -----------------------------------------------------------------------------

ratio() { # T: "N.Nx slower/faster" than flatbed cold (medians)
  awk -v t="$1" -v b="$m_cold" 'BEGIN {
    if (b <= 0 || t <= 0) { print "n/a"; exit }
    r = t / b
    if (r >= 0.95 && r <= 1.05) printf "about the same (%.2fx)\n", r
    else if (r > 1) printf "%.1fx slower\n", r; else printf "%.1fx faster\n", 1 / r
  }'
}
row() { # NAME TIMES... : one table line with the median, the range and the ratio
  local name=$1 note=${NOTE:-}
  shift
  local m
  m=$(median "$@")
  printf '%-16s %6d %8s  %-11s  %s%s\n' "$name" "$n" "$m" "$(spread "$@")" "$(ratio "$m")" "$note"
}
echo
echo "flatbed bench: $n images ($((n - IMAGES)) demo + $IMAGES random x $LAYERS layers x $LAYER_MIB MiB = $want_mib MiB)," \
  "registry on loopback, $(nproc) CPUs, median of $RUNS runs"
echo
printf '%-16s %6s %8s  %-11s  %s\n' tool images seconds "range" "vs flatbed cold"
printf '%-16s %6s %8s  %-11s  %s\n' ---- ------ ------- ----- ---------------
printf '%-16s %6d %8s  %-11s  %s\n' "flatbed (cold)" "$n" "$m_cold" "$(spread "${t_cold[@]}")" "1.0x (baseline)"
row "skopeo+umoci" "${t_umoci[@]}"
if [ -n "$crane" ]; then
  row "crane" "${t_crane[@]}"
else
  printf '%-16s %6d %8s  %-11s  %s\n' "crane" "$n" "-" "-" "skipped (cmd/crane does not build)"
fi
NOTE=" (warm: already converted)" row "flatbed (warm)" "${t_warm[@]}"
echo
echo "Work differs: flatbed cold starts its embedded NATS server and writes each layer unpacked"
echo "(.layers) plus the flat tree (.flat) and metadata; skopeo+umoci writes the compressed blobs"
echo "(OCI layout) plus the flat tree; crane writes only the flat tree."
echo

sync
say "Go benchmarks (pkg: layer, flatten)"
(cd pkg && "$GO" test -run='^$' -bench=. -benchtime=3x ./layer ./flatten)
