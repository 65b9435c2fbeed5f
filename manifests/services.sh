#!/usr/bin/env bash
# Installs (when missing) and starts what the agent and its tests need on a Debian machine.
#   services.sh engine    the Docker engine (docker.io), started unless one already answers
#   services.sh registry  a local registry on 127.0.0.1:5000 (docker-registry, no auth)
#   services.sh images    the local demo/test image rma-demo/busybox:1 (from busybox-static),
#                         the stand-in tunnel rma-test/tunnel:1 (manifests/tunnel/) and the
#                         stand-in model server rma-test/model-server:1 (manifests/model-server/)
#   services.sh tools     docker-compose and systemd-analyze (deployment tests), wrk (benchmarks)
#   services.sh browser   chromium and chromium-driver (the owner's page, tested in a real browser)
#   services.sh all       all of them
set -euo pipefail

REGISTRY_ADDR=${RMA_TEST_REGISTRY:-127.0.0.1:5000}
WORK=${RMA_SERVICES_DIR:-/tmp/rma-services}
HERE=$(cd "$(dirname "$0")" && pwd)
DEMO_IMAGE=rma-demo/busybox:1
TUNNEL_IMAGE=rma-test/tunnel:1
MODEL_IMAGE=rma-test/model-server:1
APT_UPDATED=

need_root() { [ "$(id -u)" = 0 ] || { echo "services.sh: run as root (or use sudo) to install $*" >&2; exit 1; }; }

apt_install() {
  need_root "$@"
  if [ -z "$APT_UPDATED" ]; then apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local secs=$1 what=$2; shift 2
  for _ in $(seq 1 $((secs * 4))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  echo "services.sh: $what did not come up within ${secs}s" >&2; return 1
}

engine() {
  command -v dockerd >/dev/null || apt_install docker.io
  docker info >/dev/null 2>&1 && { echo "docker engine: running"; return; }
  if [ -d /run/systemd/system ] && systemctl start docker 2>/dev/null; then :
  elif ! pgrep -x dockerd >/dev/null; then
    need_root dockerd
    setsid dockerd >/var/log/rma-dockerd.log 2>&1 </dev/null &
  fi
  wait_for 60 "docker engine" docker info
  echo "docker engine: started"
}

registry_up() { python3 -c "import urllib.request,sys; urllib.request.urlopen('http://$REGISTRY_ADDR/v2/', timeout=2)"; }

registry() {
  command -v docker-registry >/dev/null || apt_install docker-registry
  registry_up 2>/dev/null && { echo "registry: running on $REGISTRY_ADDR"; return; }
  mkdir -p "$WORK/registry-data"
  cat >"$WORK/registry.yml" <<YML
version: 0.1
storage:
  filesystem:
    rootdirectory: $WORK/registry-data
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
YML
  setsid docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 </dev/null &
  wait_for 30 "registry on $REGISTRY_ADDR" registry_up
  echo "registry: started on $REGISTRY_ADDR"
}

images() {
  [ -x /bin/busybox ] || apt_install busybox-static
  docker image inspect "$DEMO_IMAGE" >/dev/null 2>&1 && { echo "image: $DEMO_IMAGE present"; return; }
  local root; root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/www" "$root/data" "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for applet in sh sleep httpd nc echo cat date env hostname ls true wget; do
    ln -s busybox "$root/bin/$applet"
  done
  cp "$HERE/demo/index.html" "$root/www/index.html"
  tar -C "$root" -c . | docker import -c 'CMD ["/bin/sleep", "infinity"]' \
    -c 'ENV PATH=/bin' - "$DEMO_IMAGE" >/dev/null
  rm -rf "$root"
  echo "image: $DEMO_IMAGE built"
}

# A stand-in that is one script on the busybox base, the script its entrypoint:
#   script_image IMAGE SCRIPT APPLET...
script_image() {
  local image=$1 script=$2; shift 2
  # Built again when its script changed (the image is labelled with the script's hash).
  local sum; sum=$(sha256sum "$script" | cut -c1-16)
  [ "$(docker image inspect -f '{{index .Config.Labels "rma.script"}}' "$image" 2>/dev/null)" = "$sum" ] \
    && { echo "image: $image present"; return; }
  local root name; root=$(mktemp -d); name=$(basename "$script")
  mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/www"
  cp /bin/busybox "$root/bin/busybox"
  for applet in "$@"; do ln -s busybox "$root/bin/$applet"; done
  install -m 0755 "$script" "$root/bin/$name"
  tar -C "$root" -c . | docker import -c "ENTRYPOINT [\"/bin/$name\"]" \
    -c 'ENV PATH=/bin' -c "LABEL rma.script=$sum" - "$image" >/dev/null
  rm -rf "$root"
  echo "image: $image built"
}

# The stand-in tunnel (manifests/tunnel/cloudflared): cloudflared's arguments, a banner with a
# URL, and a real HTTP relay to the origin — for tests, offline.
tunnel_image() {
  script_image "$TUNNEL_IMAGE" "$HERE/tunnel/cloudflared" \
    sh sleep nc echo cat cut hostname true wc printf
}

# The stand-in model server (manifests/model-server/): 503 while "loading", then a model list.
model_image() {
  script_image "$MODEL_IMAGE" "$HERE/model-server/model-server" \
    sh sleep httpd echo cat date printf mkdir chmod true
}

tools() {
  command -v docker-compose >/dev/null || apt_install docker-compose
  command -v systemd-analyze >/dev/null || apt_install systemd
  command -v wrk >/dev/null || apt_install wrk
  echo "tools: docker-compose, systemd-analyze, wrk present"
}

browser() {
  command -v chromium >/dev/null && command -v chromedriver >/dev/null \
    || apt_install chromium chromium-driver
  echo "browser: chromium $(chromium --version 2>/dev/null | awk '{print $2}'), chromedriver present"
}

# PostgreSQL for the coordinator's second back-end (issue 25): Debian's 15, its main cluster on
# 127.0.0.1:5432, a role and a database the tests use (RMA_TEST_POSTGRES says where).
POSTGRES_URL=${RMA_TEST_POSTGRES:-postgresql://rma:rma@127.0.0.1:5432/rma_test}
postgres_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
postgres() {
  command -v pg_ctlcluster >/dev/null || apt_install postgresql
  if ! postgres_up; then
    need_root "PostgreSQL's cluster"
    version=$(ls /etc/postgresql | sort -V | tail -1)
    pg_lsclusters -h | grep -q "^$version main" || pg_createcluster "$version" main
    pg_ctlcluster "$version" main start || true
    wait_for 30 "PostgreSQL" postgres_up
  fi
  if ! psql "$POSTGRES_URL" -qtAc 'SELECT 1' >/dev/null 2>&1; then
    need_root "PostgreSQL's test role and database"
    su postgres -c "psql -qc \"CREATE ROLE rma LOGIN PASSWORD 'rma'\"" 2>/dev/null || true
    su postgres -c "createdb -O rma rma_test" 2>/dev/null || true
  fi
  echo "postgres: $POSTGRES_URL answers"
}

case "${1:-all}" in
  engine) engine ;;
  registry) registry ;;
  images) engine; images; tunnel_image; model_image ;;
  tools) tools ;;
  browser) browser ;;
  postgres) postgres ;;
  all) engine; registry; images; tunnel_image; model_image; tools; browser; postgres ;;
  *) echo "usage: $0 engine|registry|images|tools|browser|postgres|all" >&2; exit 2 ;;
esac
