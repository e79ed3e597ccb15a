#!/usr/bin/env bash
# Fetch gVisor's runsc (a static binary) from the next Debian release, for the
# second-runtime tests; nothing is installed (see fetch-debian-package.sh).
#
#   scripts/fetch-runsc.sh            prints the path of the runsc binary
#
# Environment:
#   RUNSC_CACHE   cache directory   (default /var/cache/pycontainerd-test/runsc)
#   RUNSC_SUITE   release to take it from (default trixie)
#
# Exit codes: 0 fetched (or already cached); 3 the package registry has no
# runsc for this machine (a real "no" from apt); anything else: an error.
set -euo pipefail

DEBIAN_PACKAGE_CACHE=${RUNSC_CACHE:-/var/cache/pycontainerd-test/runsc} \
  exec "$(dirname "$0")/fetch-debian-package.sh" "${RUNSC_SUITE:-trixie}" runsc usr/bin/runsc
