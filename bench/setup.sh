#!/bin/sh
# Installs the bench's tools from Debian's packages: h2load (nghttp2-client), wrk, nginx, and taskset
# (util-linux). Run as root, or it says what to install. `npm run bench` runs this first.
set -eu
PATH="$PATH:/usr/sbin"
missing=""
command -v h2load >/dev/null 2>&1 || missing="$missing nghttp2-client"
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
command -v nginx >/dev/null 2>&1 || missing="$missing nginx-light"
command -v taskset >/dev/null 2>&1 || missing="$missing util-linux"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "bench: missing tools; install them with: sudo apt-get install -y$missing" >&2
  exit 69
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
# Debian starts the nginx service on install; the bench runs its own nginx processes.
if command -v service >/dev/null 2>&1; then service nginx stop >/dev/null 2>&1 || true; fi
