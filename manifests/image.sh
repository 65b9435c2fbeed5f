#!/usr/bin/env bash
# `make image`: build rma-worker:local. Without a reachable registry the base image is made here:
# a minimal Debian with Python (debootstrap), imported as rma-base:bookworm, built once and kept.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${RMA_BASE_IMAGE:-rma-base:bookworm}
TAG=${RMA_IMAGE:-rma-worker:local}
# RMA_IMAGE_EXTRAS=coordinator: the reference coordinator too (coordinator-postgres.yml's
# rma-coordinator:local), its web server and PostgreSQL driver with it.
EXTRAS=${RMA_IMAGE_EXTRAS:-}
MIRROR=${RMA_DEBIAN_MIRROR:-http://deb.debian.org/debian}

if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  if ! command -v debootstrap >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  echo "image.sh: making $BASE with debootstrap (about a minute)"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$root" "$MIRROR" >"$root.log" 2>&1 || { tail -20 "$root.log" >&2; exit 1; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import - "$BASE" >/dev/null
fi
# The agent and its dependencies as wheels, built here (where PyPI is reachable and trusted).
PYTHON=${PYTHON:-python3}
rm -rf .build/wheels && mkdir -p .build/wheels
"$PYTHON" -m pip wheel -q --disable-pip-version-check -w .build/wheels ".${EXTRAS:+[$EXTRAS]}" >/dev/null
docker build -q --build-arg BASE="$BASE" --build-arg EXTRAS="$EXTRAS" -t "$TAG" \
  -f manifests/Dockerfile . >/dev/null
echo "image.sh: built $TAG on $BASE"
