#!/usr/bin/env bash
# Fails when two go.mod files of the workspace require different versions of one module:
# the workspace builds with one version of each, and a module built alone (GOWORK=off) must
# build with the same.
set -euo pipefail
cd "$(dirname "$0")/.."
drift=$(git ls-files '*go.mod' | while read -r f; do
  awk -v f="$f" '/^\t[a-z]/ && $2 ~ /^v[0-9]/ {print $1, $2, f}' "$f"
done | sort -u | awk '{ if ($1 in v && v[$1] != $2) { print $1 ": " v[$1] " (" w[$1] ") and " $2 " (" $3 ")" } v[$1]=$2; w[$1]=$3 }')
if [ -n "$drift" ]; then
  echo "module versions differ across the workspace (align them with go get in each module):" >&2
  echo "$drift" >&2
  exit 1
fi
