#!/usr/bin/env bash
# Fetch one package from another Debian release (a newer one, mostly) for the
# tests, without installing it: the package is downloaded with a PRIVATE apt
# configuration (this machine's own sources, suite renamed) and unpacked with
# dpkg-deb into a cache directory.
#
#   scripts/fetch-debian-package.sh SUITE PACKAGE FILE
#       prints the absolute path of FILE (a path inside the package, such as
#       usr/bin/runsc) once the package is unpacked below the cache
#
# Environment:
#   DEBIAN_PACKAGE_CACHE  cache directory
#                         (default /var/cache/pycontainerd-test/debian/SUITE/PACKAGE)
#
# Exit codes: 0 fetched (or already cached); 3 the package registry has no
# PACKAGE in SUITE for this machine (a real "no" from apt); anything else: an error.
set -euo pipefail

if (($# != 3)); then
  echo "usage: $0 SUITE PACKAGE FILE" >&2
  exit 2
fi
suite=$1
package=$2
file=${3#/}
me="fetch-debian-package($package)"
cache=${DEBIAN_PACKAGE_CACHE:-/var/cache/pycontainerd-test/debian/$suite/$package}
target="$cache/root/$file"

if [[ -e "$target" ]]; then
  echo "$target"
  exit 0
fi

# shellcheck disable=SC1091
current=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
if [[ -z "$current" ]]; then
  echo "$me: cannot tell this machine's Debian release from /etc/os-release" >&2
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

if ! apt-cache "${apt_options[@]}" show "$package" >/dev/null 2>&1; then
  if grep -q '^[EW]:' "$work/update.log" && ! refused "$work/update.log"; then
    echo "$me: apt-get update with the private ${suite} sources failed:" >&2
    sed 's/^/  /' "$work/update.log" >&2
    exit 1
  fi
  echo "$me: the package registry has no $package in ${suite} for this machine" >&2
  sed 's/^/  /' "$work/update.log" >&2
  exit 3
fi

if ! (cd "$work/archives" && apt-get "${apt_options[@]}" -qq download "$package") \
  >"$work/download.log" 2>&1; then
  cat "$work/download.log" >&2
  refused "$work/download.log" && exit 3
  exit 1
fi
deb=$(ls -t "$work/archives/${package}_"*.deb | head -n 1)
dpkg-deb -x "$deb" "$cache/root"
rm -rf "$work/lists" "$work/archives"
if [[ ! -e "$target" ]]; then
  echo "$me: $deb did not contain $file" >&2
  exit 1
fi
echo "$target"
