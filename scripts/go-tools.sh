#!/usr/bin/env bash
# Build the Go programs the tests use as real peers (ctr 2.x, crictl, ...)
# from the Go module proxy, each at the version pinned in scripts/go-tools.txt,
# into a cache directory this script owns. A tool already built at its pinned
# version is kept.
#
#   scripts/go-tools.sh           builds every tool, prints the bin directory
#   scripts/go-tools.sh NAME...   builds only these
#
# Environment:
#   PYCONTAINERD_GO_TOOLS   cache directory (default /var/cache/pycontainerd-test/go)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

cache=${PYCONTAINERD_GO_TOOLS:-/var/cache/pycontainerd-test/go}
bin="$cache/bin"
mkdir -p "$bin" "$cache/stamps"
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
export GOFLAGS=${GOFLAGS:--buildvcs=false}
export CGO_ENABLED=${CGO_ENABLED:-0}

wanted=("$@")
is_wanted() {
  ((${#wanted[@]} == 0)) && return 0
  local w
  for w in "${wanted[@]}"; do [[ $w == "$1" ]] && return 0; done
  return 1
}

# Each line: NAME PACKAGE@VERSION [KIND [MODULE=DIR]]. KIND is "install" (go
# install, the default), "testbin" (go test -c of the package, for test suites
# such as containerd's integration/client) or "build" (go build in a throwaway
# module, for programs whose go.mod has replace or exclude directives, which go
# install refuses: nerdctl, BuildKit). MODULE=DIR, for "build", replaces a
# module the program requires but the proxy does not serve with DIR of this
# repository. "download" only fetches the module into Go's module cache (for
# files the tests read, e.g. cri-api's api.proto); PACKAGE is then the module.
# "kube" builds a command of k8s.io/kubernetes (kubelet): its go.mod replaces the
# staging modules (k8s.io/api, ...) with directories of its own repository, so a
# throwaway module replaces each with its published v0.<minor>.<patch> instead.
while read -r name target kind replace _; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  is_wanted "$name" || continue
  kind=${kind:-install}
  stamp="$cache/stamps/$name@${target##*@}"
  if [[ -e "$stamp" && ( $kind == download || -x "$bin/$name" ) ]]; then
    continue
  fi
  echo "go-tools: building $name from $target" >&2
  case "$kind" in
    download)
      go mod download "$target"
      ;;
    install)
      work=$(mktemp -d)
      GOBIN="$work" go install "$target"
      mv "$work"/* "$bin/$name"
      rmdir "$work"
      ;;
    build | testbin)
      # A throwaway module that requires the target: go test -c needs a
      # module, and go install refuses one with replace or exclude directives.
      package=${target%@*}
      version=${target##*@}
      work=$(mktemp -d)
      (
        cd "$work"
        go mod init pycontainerd.test/gotools >/dev/null 2>&1
        if [[ -n "${replace:-}" ]]; then
          go mod edit -replace "${replace%%=*}=$repo/${replace#*=}"
        fi
        # A test package needs its test-only imports too (go get -t).
        get_flags=()
        [[ $kind == testbin ]] && get_flags=(-t)
        if ! go get "${get_flags[@]}" "${package}@${version}" >get.log 2>&1; then
          cat get.log >&2
          exit 1
        fi
        if [[ $kind == build ]]; then
          go build -o "$bin/$name" "$package"
        else
          go test -c -o "$bin/$name" "$package"
        fi
      )
      rm -rf "$work"
      ;;
    kube)
      package=${target%@*}
      version=${target##*@}
      work=$(mktemp -d)
      (
        cd "$work"
        go mod init pycontainerd.test/gotools >/dev/null 2>&1
        gomod=$(go mod download -json "k8s.io/kubernetes@$version" |
          sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
        for module in $(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod"); do
          go mod edit -replace "$module=$module@v0.${version#v1.}"
        done
        if ! go get "${package}@${version}" >get.log 2>&1; then
          cat get.log >&2
          exit 1
        fi
        go build -o "$bin/$name" "$package"
      )
      rm -rf "$work"
      ;;
    *)
      echo "go-tools: unknown kind '$kind' for $name" >&2
      exit 2
      ;;
  esac
  rm -f "$cache/stamps/$name@"*
  touch "$stamp"
done <scripts/go-tools.txt

echo "$bin"
