#!/usr/bin/env bash
# Installs the benchmark's load generators and backend from Debian when missing: wrk (HTTP load),
# iperf3 (bulk TCP) and nginx (the backend; the bench falls back to a uvloop server without it).
set -euo pipefail
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v iperf3 >/dev/null || missing+=(iperf3)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
[ ${#missing[@]} -eq 0 ] && exit 0
echo ">> bench: installing ${missing[*]} from Debian"
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
