#!/usr/bin/env bash
# Validates the deployment files in deploy/ without a Docker engine or a Kubernetes cluster:
#   - deploy/compose/docker-compose.yml   docker-compose config, plus structure checks
#   - deploy/kubernetes (and overlays)    kustomize build (pinned, from the Go module proxy), parsed, expected kinds and fields
#   - deploy/systemd                      systemd-analyze verify on a copy whose ExecStart
#                                         paths point at binaries that exist
#   - deploy/nats, the Kubernetes nats.conf  nats-server -t (a server >= 2.10)
#   - deploy/grafana/*.json               valid JSON, a Grafana dashboard
#   - every `flatbed serve` command line  flags and services the binary knows
# Installs what it needs on Debian (docker-compose, kubernetes-client, python3-yaml) with
# apt-get, as root or through sudo. systemd-analyze is not installed: without it the unit
# check is skipped with a message. Exit status 0 only when every check passed.
#
# Environment: FLATBED_BIN / NATS_SERVER_BIN reuse binaries built elsewhere (the e2e tests
# pass theirs); otherwise they are built with go into a temporary directory.
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
DEPLOY=$ROOT/deploy
# Every stage flatbed has: each must run in every deployment form, since every process declares
# every stage's durable consumer and the janitor sweeps only what all of them acknowledged (a
# stage that runs nowhere keeps its events in the stream). Checked against `flatbed serve --help`.
SERVICES=(resolver ingester flattener thinpusher relocator lazy exporter notifier frontdoor)
# The stages that need only the registries and the bus: no store, several replicas.
NOSTORE=(thinpusher relocator lazy exporter frontdoor)

failures=()
fail() { echo "FAIL: $*" >&2; failures+=("$*"); }
ok() { echo "ok:   $*"; }
skip() { echo "skip: $*"; }
section() { echo; echo "== $*"; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/flatbed-validate-deploy.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# --- installing what is missing -----------------------------------------------------------

apt_updated=""
apt_install() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "cannot install $* (not root, no sudo): apt-get install -y $*" >&2
      return 1
    fi
    sudo="sudo"
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "cannot install $*: no apt-get on this system" >&2
    return 1
  fi
  echo "installing $* with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "$apt_updated" ]; then
    $sudo apt-get update -qq || return 1
    apt_updated=1
  fi
  $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

need_cmd() { # need_cmd COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  apt_install "$2" && command -v "$1" >/dev/null 2>&1
}

# A python3 with PyYAML: Debian's (docker-compose depends on python3-yaml) or the one on PATH.
find_python() {
  local p
  for p in /usr/bin/python3 "$(command -v python3 2>/dev/null)"; do
    [ -n "$p" ] && [ -x "$p" ] && "$p" -c 'import yaml' >/dev/null 2>&1 && { echo "$p"; return 0; }
  done
  return 1
}

section "tools"
need_cmd docker-compose docker-compose || fail "docker-compose is missing and could not be installed (apt-get install docker-compose)"
# kustomize at a pinned version, built from the Go module proxy: Debian's kubectl (1.20) embeds
# a kustomize too old for current kustomizations, and a fresh machine may have no kubectl.
KUSTOMIZE_VERSION=v5.7.1
KUSTOMIZE=$ROOT/bin/kustomize-$KUSTOMIZE_VERSION
if [ ! -x "$KUSTOMIZE" ]; then
  mkdir -p "$ROOT/bin"
  tmpbin=$(mktemp -d)
  if GOBIN=$tmpbin GOFLAGS=-mod=mod go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" >"$tmpbin/log" 2>&1; then
    mv "$tmpbin/kustomize" "$KUSTOMIZE"
  else
    cat "$tmpbin/log" >&2
    fail "building kustomize $KUSTOMIZE_VERSION from the Go module proxy failed"
  fi
  rm -rf "$tmpbin"
fi
PY=$(find_python) || { apt_install python3 python3-yaml >/dev/null && PY=$(find_python); } || PY=""
[ -n "$PY" ] || fail "python3 with PyYAML is missing and could not be installed (apt-get install python3-yaml)"
for t in docker-compose "$KUSTOMIZE"; do command -v "$t" >/dev/null 2>&1 && ok "$t: $(command -v "$t")"; done
[ -n "$PY" ] && ok "python3 with yaml: $PY"

# flatbed and a nats-server >= 2.10 (built from the module cache, like the e2e tests do).
FLATBED=${FLATBED_BIN:-}
if [ -z "$FLATBED" ] && command -v go >/dev/null 2>&1; then
  if (cd cmd/flatbed && go build -o "$TMP/flatbed" .) >"$TMP/build-flatbed.log" 2>&1; then
    FLATBED=$TMP/flatbed
  else
    fail "building cmd/flatbed: $(tail -5 "$TMP/build-flatbed.log")"
  fi
fi
[ -n "$FLATBED" ] && ok "flatbed: $FLATBED ($("$FLATBED" version 2>/dev/null))"

nats_version_ok() { # nats-server >= 2.10
  local v
  v=$("$1" --version 2>/dev/null | sed -n 's/.*v\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
  [ -n "$v" ] && set -- $v && { [ "$1" -gt 2 ] || { [ "$1" -eq 2 ] && [ "$2" -ge 10 ]; }; }
}
NATS=${NATS_SERVER_BIN:-}
if [ -z "$NATS" ] && command -v nats-server >/dev/null 2>&1 && nats_version_ok "$(command -v nats-server)"; then
  NATS=$(command -v nats-server)
fi
if [ -z "$NATS" ] && command -v go >/dev/null 2>&1; then
  if (cd events && go build -o "$TMP/nats-server" github.com/nats-io/nats-server/v2) >"$TMP/build-nats.log" 2>&1; then
    NATS=$TMP/nats-server
  else
    fail "building nats-server from the events module: $(tail -5 "$TMP/build-nats.log")"
  fi
fi
[ -n "$NATS" ] && ok "nats-server: $NATS ($("$NATS" --version 2>/dev/null))"

# --- docker-compose -----------------------------------------------------------------------

section "docker-compose"
COMPOSE=$DEPLOY/compose/docker-compose.yml
if command -v docker-compose >/dev/null 2>&1; then
  if docker-compose -f "$COMPOSE" config >"$TMP/compose.yml" 2>"$TMP/compose.err"; then
    ok "docker-compose config"
    if [ -s "$TMP/compose.err" ]; then
      echo "   warnings:"; sed 's/^/   /' "$TMP/compose.err"
    fi
    if docker-compose -f "$COMPOSE" --profile cli config -q 2>"$TMP/compose-cli.err"; then
      ok "docker-compose --profile cli config"
    else
      fail "docker-compose --profile cli config: $(cat "$TMP/compose-cli.err")"
    fi
    if [ -n "$PY" ]; then
      if NOSTORE="${NOSTORE[*]}" "$PY" - "$TMP/compose.yml" "${SERVICES[@]}" <<'EOF'
import os, sys, yaml
cfg = yaml.safe_load(open(sys.argv[1]))
services, want = cfg.get("services", {}), sys.argv[2:]
nostore = os.environ["NOSTORE"].split()
errs = []
for n in ("nats-1", "nats-2", "nats-3"):
    s = services.get(n)
    if not s:
        errs.append(f"no service {n}"); continue
    img = s.get("image", "")
    tag = img.split(":", 1)[1] if ":" in img else ""
    try:
        major, minor = (int(x) for x in tag.split("-")[0].split(".")[:2])
        if (major, minor) < (2, 10):
            errs.append(f"{n}: image {img} is older than nats 2.10")
    except ValueError:
        errs.append(f"{n}: cannot read the nats version of image {img!r}")
    if not any(str(v).endswith(":/var/lib/flatbed-nats") or ":/var/lib/flatbed-nats:" in str(v) for v in s.get("volumes", [])):
        errs.append(f"{n}: no volume on the JetStream store_dir /var/lib/flatbed-nats")
if not str(services.get("registry", {}).get("image", "")).startswith("registry:2"):
    errs.append("no registry:2 service")
for n in want:
    s = services.get(n)
    if not s:
        errs.append(f"no service {n}"); continue
    cmd = s.get("command") or []
    if cmd[:2] != ["serve", n]:
        errs.append(f"{n}: command does not start with 'serve {n}': {cmd}")
    if "build" not in s or not str(s["build"].get("dockerfile", "")).endswith("deploy/Dockerfile"):
        errs.append(f"{n}: not built from deploy/Dockerfile")
    ports = s.get("ports", [])
    for p in ports:
        if isinstance(p, dict):
            host_ip, target = p.get("host_ip"), p.get("target")
        else:
            parts = str(p).split(":")
            host_ip, target = (parts[0] if len(parts) == 3 else None), parts[-1].split("/")[0]
        if host_ip != "127.0.0.1":
            errs.append(f"{n}: port {p} is not bound to the host's loopback")
        if str(target) != "9090" and not (n == "frontdoor" and str(target) == "8780"):
            errs.append(f"{n}: port {p} does not publish the metrics port 9090 (or the front door's 8780)")
    if not ports:
        errs.append(f"{n}: metrics port not published")
    hc = " ".join(map(str, (s.get("healthcheck") or {}).get("test", [])))
    if "/healthz" not in hc:
        errs.append(f"{n}: healthcheck does not use /healthz: {hc!r}")
    mounts = {str(v).split(":")[1]: str(v) for v in s.get("volumes", [])}
    if n not in nostore and not any(v.startswith("store:") for v in mounts.values()):
        errs.append(f"{n}: does not mount the store volume")
    if n in nostore and mounts.get("/store"):
        errs.append(f"{n}: mounts the store, which it does not need")
ports = {}
for n in want:
    for p in (services.get(n) or {}).get("ports", []):
        host = str(p.get("published")) if isinstance(p, dict) else str(p).split(":")[-2]
        if host in ports:
            errs.append(f"{n}: host port {host} is also published by {ports[host]}")
        ports[host] = n
for e in errs:
    print("   " + e)
sys.exit(1 if errs else 0)
EOF
      then ok "compose services: 3 NATS nodes, registry, ${SERVICES[*]}"
      else fail "compose structure (see above)"
      fi
    fi
  else
    fail "docker-compose config: $(cat "$TMP/compose.err")"
  fi
else
  skip "docker-compose not available"
fi

# --- Dockerfile ---------------------------------------------------------------------------

section "Dockerfile"
# No engine here to build it: check that it copies the go.mod of every workspace module
# (the workspace refuses a missing one) and builds cmd/flatbed on the images asked for.
dockerfile_ok=1
for m in $(sed -n '/^use *(/,/^)/{s/^[[:space:]]*\.\/\([^[:space:]]*\).*/\1/p}' go.work; sed -n 's/^use \.\/\([^[:space:]]*\)$/\1/p' go.work); do
  grep -q "^COPY $m/go.mod $m/go.sum $m/\$" "$DEPLOY/Dockerfile" ||
    { echo "   deploy/Dockerfile does not copy $m/go.mod and $m/go.sum (a module of go.work)"; dockerfile_ok=0; }
done
grep -q '^FROM golang:\${GO_VERSION}-bookworm AS build' "$DEPLOY/Dockerfile" && grep -q '^ARG GO_VERSION=1.26$' "$DEPLOY/Dockerfile" ||
  { echo "   deploy/Dockerfile: the build stage is not golang:1.26"; dockerfile_ok=0; }
grep -q '^FROM debian:bookworm-slim' "$DEPLOY/Dockerfile" || { echo "   deploy/Dockerfile: the final stage is not debian:bookworm-slim"; dockerfile_ok=0; }
grep -q 'cd cmd/flatbed && go build' "$DEPLOY/Dockerfile" || { echo "   deploy/Dockerfile does not build cmd/flatbed"; dockerfile_ok=0; }
if [ $dockerfile_ok -eq 1 ]; then ok "deploy/Dockerfile copies every go.work module and builds cmd/flatbed"
else fail "deploy/Dockerfile (see above)"
fi

# --- Kubernetes ---------------------------------------------------------------------------

section "kubernetes"
check_kustomize() { # check_kustomize DIR REPLICAS_OF_THE_NOSTORE_STAGES
  local dir=$1 out=$TMP/kustomize-$(echo "$1" | tr '/' '_').yaml
  if ! "$KUSTOMIZE" build "$DEPLOY/$dir" >"$out" 2>"$out.err"; then
    fail "kustomize build deploy/$dir: $(cat "$out.err")"
    return
  fi
  ok "kustomize build deploy/$dir"
  [ -n "$PY" ] || return
  if NOSTORE="${NOSTORE[*]}" "$PY" - "$out" "$2" "${SERVICES[@]}" <<'EOF'
import os, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
nostore_replicas, services = int(sys.argv[2]), sys.argv[3:]
nostore = os.environ["NOSTORE"].split()
errs = []
by = {}
for d in docs:
    if not isinstance(d, dict) or "kind" not in d or "apiVersion" not in d or "name" not in d.get("metadata", {}):
        errs.append(f"not a Kubernetes object: {str(d)[:80]}"); continue
    by[(d["kind"], d["metadata"]["name"])] = d
    if d["kind"] != "Namespace" and d["metadata"].get("namespace") != "flatbed":
        errs.append(f'{d["kind"]}/{d["metadata"]["name"]}: not in namespace flatbed')
kinds = sorted({k for k, _ in by})
for k in ("Namespace", "ConfigMap", "Service", "StatefulSet", "Deployment", "PersistentVolumeClaim"):
    if k not in kinds:
        errs.append(f"no {k}")
sts = by.get(("StatefulSet", "nats"))
if not sts:
    errs.append("no StatefulSet nats")
else:
    if sts["spec"].get("replicas") != 3:
        errs.append("StatefulSet nats: replicas != 3")
    svc = by.get(("Service", sts["spec"].get("serviceName")))
    if not svc or svc["spec"].get("clusterIP") != "None":
        errs.append("StatefulSet nats: its serviceName is not a headless Service")
    if not sts["spec"].get("volumeClaimTemplates"):
        errs.append("StatefulSet nats: no volumeClaimTemplates")
conf = [d for (k, _), d in by.items() if k == "ConfigMap" and "nats.conf" in d.get("data", {})]
if not conf:
    errs.append("no ConfigMap with nats.conf")
else:
    c = conf[0]["data"]["nats.conf"]
    for w in ("jetstream", "cluster", "routes", "nats-0.nats:6222", "nats-1.nats:6222", "nats-2.nats:6222"):
        if w not in c:
            errs.append(f"nats.conf: no {w}")
    open(sys.argv[1] + ".nats.conf", "w").write(c)
pvcs = [d for (k, _), d in by.items() if k == "PersistentVolumeClaim"]
mounted = set()
for n in services:
    dep = by.get(("Deployment", f"flatbed-{n}")) or by.get(("StatefulSet", f"flatbed-{n}"))
    if not dep:
        errs.append(f"no Deployment flatbed-{n}"); continue
    pod = dep["spec"]["template"]["spec"]
    if n in nostore and dep["spec"].get("replicas") != nostore_replicas:
        errs.append(f"{n}: replicas {dep['spec'].get('replicas')} != {nostore_replicas}")
    c = pod["containers"][0]
    args = c.get("args", [])
    if args[:2] != ["serve", n]:
        errs.append(f"{n}: args do not start with 'serve {n}': {args}")
    if "--metrics-addr" not in args:
        errs.append(f"{n}: no --metrics-addr (the default is loopback, unreachable for probes)")
    lp, rp = c.get("livenessProbe", {}).get("httpGet", {}), c.get("readinessProbe", {}).get("httpGet", {})
    if lp.get("path") != "/healthz" or rp.get("path") != "/readyz":
        errs.append(f"{n}: probes are not /healthz (liveness) and /readyz (readiness)")
    if not c.get("resources", {}).get("requests"):
        errs.append(f"{n}: no resource requests")
    if not c.get("securityContext") or not pod.get("securityContext"):
        errs.append(f"{n}: no securityContext")
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    claims = {v["persistentVolumeClaim"]["claimName"] for v in vols.values() if "persistentVolumeClaim" in v}
    if n not in nostore:
        if not any(m["mountPath"] == "/store" for m in c.get("volumeMounts", [])):
            errs.append(f"{n}: does not mount the store at /store")
        mounted |= claims
    elif any(m["mountPath"] == "/store" for m in c.get("volumeMounts", [])):
        errs.append(f"{n}: mounts the store")
    svc = by.get(("Service", f"flatbed-{n}"))
    if not svc or svc["metadata"].get("annotations", {}).get("prometheus.io/scrape") != "true":
        errs.append(f"{n}: no metrics Service with prometheus.io/scrape: \"true\"")
    print("SERVE " + " ".join(args))
for p in pvcs:
    if p["metadata"]["name"] not in mounted and p["metadata"]["name"] != "flatbed-notifications":
        errs.append(f'PersistentVolumeClaim {p["metadata"]["name"]} is mounted by no flatbed service')
for e in errs:
    print("   " + e)
print("   kinds: " + ", ".join(f"{k}" for k in kinds), file=sys.stderr)
sys.exit(1 if errs else 0)
EOF
  then ok "deploy/$dir: expected kinds and fields"
  else fail "deploy/$dir: structure (see above)"
  fi >"$out.check" 2>&1
  grep -v '^SERVE ' "$out.check"
  grep '^SERVE ' "$out.check" | sed 's/^SERVE //' >>"$TMP/serve-lines"
  if [ -s "$out.nats.conf" ] && [ -n "$NATS" ]; then
    if NATS_SERVER_NAME=nats-0 "$NATS" -t -c "$out.nats.conf" >"$out.nats.log" 2>&1; then
      ok "deploy/$dir: nats.conf of the ConfigMap (nats-server -t)"
    else
      fail "deploy/$dir: nats.conf of the ConfigMap: $(cat "$out.nats.log")"
    fi
  fi
}
check_kustomize kubernetes 2
for o in "$DEPLOY"/kubernetes/overlays/*/; do
  [ -f "$o/kustomization.yaml" ] && check_kustomize "kubernetes/overlays/$(basename "$o")" 1
done

# --- flatbed command lines ----------------------------------------------------------------

section "flatbed command lines"
if [ -n "$PY" ] && [ -s "$TMP/compose.yml" ]; then
  "$PY" - "$TMP/compose.yml" >>"$TMP/serve-lines" <<'EOF'
import sys, yaml
for n, s in yaml.safe_load(open(sys.argv[1]))["services"].items():
    cmd = s.get("command") or []
    if cmd[:1] == ["serve"]:
        print(" ".join(cmd))
EOF
fi
# The systemd template's ExecStart, continuation lines joined, variables left as words.
sed -n '/^ExecStart=/,/[^\\]$/p' "$DEPLOY/systemd/flatbed@.service" | tr -d '\\\n' |
  sed -e 's/^ExecStart=[^ ]*flatbed //' -e 's/%i/resolver/' -e 's/  */ /g' >>"$TMP/serve-lines"
echo >>"$TMP/serve-lines"
if [ -z "$FLATBED" ]; then
  skip "no flatbed binary (no go): command lines not checked"
elif [ -s "$TMP/serve-lines" ]; then
  help=$("$FLATBED" serve --help 2>&1)
  # Every stage the binary runs by default must be deployed (see SERVICES).
  known=$(tr '\n' ' ' <<<"$help" | sed -n 's/.*(default: all of \([^)]*\)).*/\1/p' | tr -d ',')
  if [ -z "$known" ]; then
    skip "'flatbed serve --help' names no default service list: SERVICES not compared with it"
  else
    missing=() unknown=()
    for s in $known; do [[ " ${SERVICES[*]} " == *" $s "* ]] || missing+=("$s"); done
    for s in "${SERVICES[@]}"; do [[ " $known " == *" $s "* ]] || unknown+=("$s"); done
    if [ ${#missing[@]} -eq 0 ] && [ ${#unknown[@]} -eq 0 ]; then
      ok "the deployed stages are every stage flatbed runs: ${SERVICES[*]}"
    else
      [ ${#missing[@]} -eq 0 ] || fail "stages flatbed runs but scripts/validate-deploy.sh (SERVICES) and deploy/ do not: ${missing[*]} (every stage must run somewhere, or its events pile up in the stream)"
      [ ${#unknown[@]} -eq 0 ] || fail "SERVICES names stages flatbed does not run: ${unknown[*]}"
    fi
  fi
  bad=0 lines=0
  while read -r line; do
    [ -n "$line" ] || continue
    lines=$((lines + 1))
    set -- $line
    [ "$1" = serve ] || { echo "   not a serve command: $line"; bad=1; continue; }
    shift
    for w in "$@"; do
      case $w in
        --*) w=${w%%=*}
             grep -qE -- "(^|[ ,])$w( |$)" <<<"$help" || { echo "   unknown flag $w in: $line"; bad=1; } ;;
        -?) grep -qE -- "(^|[ ])$w, " <<<"$help" || { echo "   unknown flag $w in: $line"; bad=1; } ;;
      esac
    done
    svc=$1
    [[ " ${SERVICES[*]} " == *" $svc "* ]] || { echo "   unknown service $svc in: $line"; bad=1; }
  done <"$TMP/serve-lines"
  if [ $bad -eq 0 ]; then ok "$lines 'flatbed serve' command lines use flags and services flatbed knows"
  else fail "flatbed command lines (see above)"
  fi
fi

# --- NATS configurations ------------------------------------------------------------------

section "nats"
if [ -n "$NATS" ]; then
  for c in "$DEPLOY"/nats/*.conf; do
    if NATS_SERVER_NAME=nats-1 "$NATS" -t -c "$c" >"$TMP/nats.log" 2>&1; then
      ok "nats-server -t -c deploy/nats/$(basename "$c")"
    else
      fail "deploy/nats/$(basename "$c"): $(cat "$TMP/nats.log")"
    fi
  done
  grep -q 'routes' "$DEPLOY/nats/nats-cluster.conf" && grep -q 'jetstream' "$DEPLOY/nats/nats-cluster.conf" ||
    fail "deploy/nats/nats-cluster.conf: no jetstream or cluster routes"
else
  skip "no nats-server >= 2.10 (and no go to build one): NATS configurations not checked"
fi

# --- systemd ------------------------------------------------------------------------------

section "systemd"
if command -v systemd-analyze >/dev/null 2>&1; then
  units=$TMP/units
  mkdir -p "$units"
  cp -r "$DEPLOY"/systemd/. "$units"/
  # ExecStart must name existing executables: point the install paths at real ones.
  fb=${FLATBED:-/bin/true}
  ns=${NATS:-/bin/true}
  for f in "$units"/*.service "$units"/*.target; do
    sed -i -e "s|/usr/local/bin/flatbed|$fb|g" -e "s|/usr/local/bin/nats-server|$ns|g" "$f"
  done
  recursive=()
  systemd-analyze verify --help 2>&1 | grep -q -- '--recursive-errors' && recursive=(--recursive-errors=yes)
  verify() {
    local log=$TMP/verify.log
    # Any output (unknown keys, bad values: warnings with status 0) counts as a failure.
    if (cd "$units" && systemd-analyze verify --man=no "${recursive[@]}" "$1") >"$log" 2>&1 && ! [ -s "$log" ]; then
      ok "systemd-analyze verify $1"
    else
      sort -u "$log" | sed "s|$units/|deploy/systemd/|g; s/^/   /"
      fail "systemd-analyze verify $1 (see above)"
    fi
  }
  verify flatbed-nats.service
  verify flatbed.target
  for s in "${SERVICES[@]}"; do verify "./flatbed@$s.service"; done
  for s in "${SERVICES[@]}"; do
    grep -q "flatbed@$s.service" "$DEPLOY/systemd/flatbed.target" || fail "flatbed.target does not want flatbed@$s.service"
  done
else
  skip "systemd-analyze is not available: systemd units not verified"
fi

# --- Grafana ------------------------------------------------------------------------------

section "grafana"
for j in "$DEPLOY"/grafana/*.json; do
  if command -v python3 >/dev/null 2>&1; then
    python3 -m json.tool "$j" >/dev/null 2>"$TMP/json.err" && ok "python3 -m json.tool deploy/grafana/$(basename "$j")" ||
      fail "deploy/grafana/$(basename "$j"): $(cat "$TMP/json.err")"
  elif command -v jq >/dev/null 2>&1; then
    jq empty "$j" 2>"$TMP/json.err" && ok "jq deploy/grafana/$(basename "$j")" ||
      fail "deploy/grafana/$(basename "$j"): $(cat "$TMP/json.err")"
  else
    fail "neither python3 nor jq to check deploy/grafana/$(basename "$j")"
    continue
  fi
  if command -v python3 >/dev/null 2>&1; then
    python3 - "$j" <<'EOF' || fail "deploy/grafana/$(basename "$j"): not a usable Grafana dashboard"
import json, sys
d = json.load(open(sys.argv[1]))
errs = []
for k in ("title", "uid", "panels", "schemaVersion"):
    if k not in d:
        errs.append(f"no {k}")
if not 36 <= d.get("schemaVersion", 0) <= 41:
    errs.append(f"schemaVersion {d.get('schemaVersion')} is not around 39")
ids = [p.get("id") for p in d.get("panels", [])]
if len(ids) != len(set(ids)):
    errs.append("duplicate panel ids")
for p in d.get("panels", []):
    if p.get("type") != "row" and not any(t.get("expr") for t in p.get("targets", [])):
        errs.append(f"panel {p.get('title')!r} has no query")
for e in errs:
    print("   " + e)
sys.exit(1 if errs else 0)
EOF
  fi
done

# --- summary ------------------------------------------------------------------------------

echo
if [ ${#failures[@]} -gt 0 ]; then
  echo "validate-deploy: ${#failures[@]} check(s) failed:" >&2
  printf '  - %s\n' "${failures[@]}" >&2
  exit 1
fi
echo "validate-deploy: all checks passed"
