#!/usr/bin/env bash
# Install what pycontainerd needs on a Debian machine (as root), then the
# package itself into a virtual environment at .venv.
#   scripts/install.sh          what the daemon needs to run
#   scripts/install.sh --test   also what the tests need
set -euo pipefail
cd "$(dirname "$0")/.."

runtime_packages=(runc python3 python3-venv ca-certificates)
test_packages=(containerd crun docker-registry busybox-static golang-github-containerd-containerd-dev
               docker.io iproute2 util-linux procps containernetworking-plugins iptables)
extras=""
packages=("${runtime_packages[@]}")
if [[ "${1:-}" == "--test" ]]; then
  packages+=("${test_packages[@]}")
  extras="[dev]"
fi

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # containerd and docker.io come for their clients and for the dockerd the
  # tests start themselves: their packaged services must not start. Debian's
  # policy-rc.d says so to the packages' scripts, for this install only.
  policy=/usr/sbin/policy-rc.d
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi


# gVisor's runsc, a second OCI runtime for the tests (Debian trixie's static binary).
if [[ "${1:-}" == "--test" ]]; then
  scripts/fetch-runsc.sh >/dev/null || echo "note: runsc not fetched (exit $?); the runsc tests will report why"
fi

# Docker 28 (daemon, CLI, buildx) from Debian forky, for the containerd-image-store
# tests; bookworm's docker.io (20.10) stays the one installed.
if [[ "${1:-}" == "--test" ]]; then
  scripts/fetch-docker28.sh >/dev/null || echo "note: Docker 28 not fetched (exit $?); its tests will report why"
fi

# Go programs the tests use as peers (ctr 2.x, crictl, ...), at pinned versions.
if [[ "${1:-}" == "--test" ]]; then
  scripts/go-tools.sh >/dev/null
fi

python=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$python" -m venv .venv
fi
# Reinstall only when the project's dependencies changed (the install is editable).
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)${extras:+-dev}"
if [[ ! -e $stamp ]]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".${extras}"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
echo "pycontainerd installed in .venv (run: .venv/bin/pycontainerd)"
