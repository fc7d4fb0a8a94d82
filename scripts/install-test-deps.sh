#!/usr/bin/env bash
# Installs what the tests need on Debian 12: the distribution registry (docker-registry), the
# reference clients umoci, skopeo and podman, and GNU time (make bench's peak RSS). nats-server
# is built by the e2e tests from the Go module cache, at the version flatbed embeds (Debian's
# 2.9 is too old).
set -euo pipefail
need=()
for pair in docker-registry:docker-registry umoci:umoci skopeo:skopeo podman:podman; do
  bin=${pair%%:*} pkg=${pair#*:}
  command -v "$bin" >/dev/null 2>&1 || need+=("$pkg")
done
# GNU time: `command -v time` would find the shell's keyword.
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install ${need[*]} (as root: apt-get install ${need[*]})" >&2; exit 1; }
  sudo="sudo"
fi
echo "installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
