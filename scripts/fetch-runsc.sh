#!/usr/bin/env bash
# Fetch gVisor's runsc (a static binary) from the next Debian release, for the
# second-runtime tests. Nothing is installed: the package is downloaded with a
# PRIVATE apt configuration (this machine's own sources, suite renamed) and
# unpacked with dpkg-deb into a cache directory.
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

cache=${RUNSC_CACHE:-/var/cache/pycontainerd-test/runsc}
suite=${RUNSC_SUITE:-trixie}
binary="$cache/root/usr/bin/runsc"

if [[ -x "$binary" ]]; then
  echo "$binary"
  exit 0
fi

# shellcheck disable=SC1091
current=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
if [[ -z "$current" ]]; then
  echo "fetch-runsc: cannot tell this machine's Debian release from /etc/os-release" >&2
  exit 1
fi

work="$cache/apt"
mkdir -p "$work/lists/partial" "$work/archives/partial" "$work/parts" "$cache/root"

# The machine's own sources, in both formats, with the suite renamed
# (bookworm -> trixie, bookworm-updates -> trixie-updates, ...).
: >"$work/sources.list"
if [[ -f /etc/apt/sources.list ]]; then
  sed -E "s/\b${current}\b/${suite}/g" /etc/apt/sources.list >>"$work/sources.list"
fi
rm -f "$work/parts/"*
shopt -s nullglob
for source in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  sed -E "s/\b${current}\b/${suite}/g" "$source" >"$work/parts/$(basename "$source")"
done
shopt -u nullglob

apt_options=(
  -o "Dir::Etc::SourceList=$work/sources.list"
  -o "Dir::Etc::SourceParts=$work/parts"
  -o "Dir::State::Lists=$work/lists"
  -o "Dir::Cache::Archives=$work/archives"
  -o "Dir::Cache::pkgcache="
  -o "Dir::Cache::srcpkgcache="
  -o "Debug::NoLocking=true"
  -o "APT::Sandbox::User=root"
)

# Sources of other releases (third-party repositories) may fail to update;
# only the renamed Debian suite matters, so errors are judged below.
apt-get "${apt_options[@]}" -qq update >"$work/update.log" 2>&1 || true

refused() {  # the registry answered, and the answer was no (HTTP 4xx, no such suite)
  grep -Eq '\b(40[0-9]|41[0-9]|451)\b|does not have a Release file' "$@"
}

if ! apt-cache "${apt_options[@]}" show runsc >/dev/null 2>&1; then
  if grep -q '^[EW]:' "$work/update.log" && ! refused "$work/update.log"; then
    echo "fetch-runsc: apt-get update with the private ${suite} sources failed:" >&2
    sed 's/^/  /' "$work/update.log" >&2
    exit 1
  fi
  echo "fetch-runsc: the package registry has no runsc in ${suite} for this machine" >&2
  sed 's/^/  /' "$work/update.log" >&2
  exit 3
fi

if ! (cd "$work/archives" && apt-get "${apt_options[@]}" -qq download runsc) \
  >"$work/download.log" 2>&1; then
  cat "$work/download.log" >&2
  refused "$work/download.log" && exit 3
  exit 1
fi
deb=$(ls -t "$work/archives"/runsc_*.deb | head -n 1)
dpkg-deb -x "$deb" "$cache/root"
rm -rf "$work/lists" "$work/archives"
if [[ ! -x "$binary" ]]; then
  echo "fetch-runsc: $deb did not contain usr/bin/runsc" >&2
  exit 1
fi
echo "$binary"
