#!/usr/bin/env bash
# Fetch Docker 28 from Debian forky for the tests (nothing is installed; see
# fetch-debian-package.sh): dockerd (docker.io), the CLI (docker-cli) and the
# buildx plugin (docker-buildx) that `docker build` needs.
#
#   scripts/fetch-docker28.sh      prints the paths of dockerd, docker and docker-buildx
#
# Environment:
#   DOCKER28_SUITE   release to take them from (default forky)
#
# Exit codes: 0 fetched (or already cached); 3 the package registry has no such
# package for this machine; anything else: an error.
set -euo pipefail

suite=${DOCKER28_SUITE:-forky}
fetch="$(dirname "$0")/fetch-debian-package.sh"
"$fetch" "$suite" docker.io usr/sbin/dockerd
"$fetch" "$suite" docker-cli usr/bin/docker
"$fetch" "$suite" docker-buildx usr/libexec/docker/cli-plugins/docker-buildx
