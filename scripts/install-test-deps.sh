#!/usr/bin/env bash
# Installs what the tests need on Debian 12: the distribution registry (docker-registry), the
# reference clients umoci, skopeo and podman, and GNU time (make bench's peak RSS). nats-server
# is built by the e2e tests from the Go module cache, at the version flatbed embeds (Debian's
# 2.9 is too old). npm's s3rver is the S3-compatible server of the export tests (npm from
# Debian's packages; s3rver works offline once installed). Debian's chromium runs the front
# door's status page in the browser test (headless, driven by chromedp).
# MariaDB (server and client) is the lazy stage's SQL dedup store in its e2e test, started
# by the test on a loopback port.
set -euo pipefail
need=()
for pair in docker-registry:docker-registry umoci:umoci skopeo:skopeo podman:podman chromium:chromium mariadbd:mariadb-server mariadb:mariadb-client; do
  bin=${pair%%:*} pkg=${pair#*:}
  command -v "$bin" >/dev/null 2>&1 || need+=("$pkg")
done
# GNU time: `command -v time` would find the shell's keyword.
[ -x /usr/bin/time ] || need+=(time)
s3rver=""
if ! command -v s3rver >/dev/null 2>&1; then
  s3rver=s3rver@3.7.1
  command -v npm >/dev/null 2>&1 || need+=(npm)
fi
if [ ${#need[@]} -eq 0 ] && [ -z "$s3rver" ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install ${need[*]} (as root: apt-get install ${need[*]})" >&2; exit 1; }
  sudo="sudo"
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ -n "$s3rver" ]; then
  echo "installing $s3rver (npm)"
  $sudo npm install -g --no-fund --no-audit --loglevel=error "$s3rver" >/dev/null
fi
