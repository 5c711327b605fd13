#!/usr/bin/env bash
# The consumer smoke test: the three packages as a user gets them. Run by
# .ci/run; contributors run it the same way (bash scripts/consumer-test.sh).
#
# 1. `npm run build` (incremental: quick when dist/ is up to date), then
#    `npm pack` of @gavel/core, @gavel/testing and @gavel/adapters into a
#    temporary directory (sizes printed; contents checked: dist with .d.ts
#    and the bin, no build info, no tests).
# 2. A project in a temporary directory outside the workspace installs the
#    tarballs and the peer dependencies at the documented ranges, once. Its
#    install scripts are reviewed as a user does after npm warns about them:
#    better-sqlite3 approved, msgpackr-extract and @parcel/watcher denied
#    (they load prebuilt N-API binaries), and nothing else may be left
#    unreviewed. The addon itself is built by scripts/node.sh for each Node
#    (compiled once per better-sqlite3 version and Node ABI, then copied
#    from its cache): in the background, while step 3 runs.
# 3. Type-check (system Node): scripts/consumer/consumer.ts, which imports
#    every public module, with `tsc --noEmit` under each
#    scripts/consumer/tsconfig.*.json (strict and not, exactOptionalPropertyTypes,
#    noPropertyAccessFromIndexSignature, erasableSyntaxOnly, NodeNext and
#    Bundler resolution; skipLibCheck false but for `tsc --init`'s
#    defaults), with the project's TypeScript (~5.9) and, for the strict
#    and loose NodeNext configs, with TypeScript 7 (what `npm install
#    typescript` gives today; its own small install).
# 4. For each Node (the system Node, 22 and 24 from scripts/node.sh; set
#    GAVEL_CONSUMER_NODES="system 24" to choose):
#    a. scripts/consumer/smoke.mjs with plain `node`: rules read as YAML
#       and as JSON, an approval parked on a SQLite file, approved, the work
#       run exactly once (one summary line);
#    b. the installed `gavel` bin, run from / : `--help` (its start-up time,
#       best of 3), `--version` (the packed version), `audit verify` of the
#       database of (a) (exit 0, "intact: …"), and, with @effect/cli moved
#       out of node_modules, `--help` again: exactly one line naming
#       @effect/cli and exit code 5.
#
# Fails on the first error, naming the step and the Node. Environment:
# GAVEL_CONSUMER_NODES (default "system 22 24"), GAVEL_CONSUMER_KEEP=1 keeps
# the temporary directory (its path is printed), GAVEL_NODE_CACHE (see
# scripts/node.sh).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
export npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false

# The peers at the ranges @gavel/adapters and the docs give, and the TypeScript a consumer builds with.
peers=(
  "effect@^3.22" "@effect/platform@^0.97" "@effect/platform-node@^0.108"
  "@effect/sql@^0.52" "@effect/sql-sqlite-node@^0.53" "@effect/sql-pg@^0.53" "@effect/cli@^0.77"
  "yaml@^2.9" "jose@^6.2" "@a2a-js/sdk@^1.3"
  "typescript@~5.9" "@types/node@^20" "@types/pg@^8"
)
read -ra nodes <<<"${GAVEL_CONSUMER_NODES:-system 22 24}"
configs=(nodenext-strict nodenext-loose bundler-strict bundler-loose init)
ts7_configs=(nodenext-strict nodenext-loose)

work="$(mktemp -d "${TMPDIR:-/tmp}/gavel-consumer.XXXXXX")"
project="$work/project"
step="setup"
moved_cli=""
builder=""

finish() {
  local rc=$?
  [ -z "$builder" ] || kill -- "-$builder" 2>/dev/null || true
  [ -z "$moved_cli" ] || mv "$moved_cli" "$project/node_modules/@effect/cli" 2>/dev/null || true
  if [ "$rc" -ne 0 ]; then
    echo "consumer-test: FAILED at: $step (work directory: $work)" >&2
  elif [ "${GAVEL_CONSUMER_KEEP:-}" = 1 ]; then
    echo "consumer-test: work directory kept: $work"
  fi
  if [ "$rc" -eq 0 ] && [ "${GAVEL_CONSUMER_KEEP:-}" != 1 ]; then rm -rf "$work"; fi
}
trap finish EXIT

fail() { echo "consumer-test: $step: $*" >&2; exit 1; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
started="$(now_ms)"
phase_started="$started"
timings=()
# Starts a step; the time of the previous one goes to the summary.
phase=""
begin() {
  local t
  t="$(now_ms)"
  [ -z "$phase" ] || timings+=("$phase $(( (t - phase_started) / 1000 )) s")
  phase="$1"
  step="$1"
  phase_started="$t"
  [ -z "$1" ] || echo "::: consumer-test: $1"
}
# Runs a command with its output to a log, shown only when it fails.
quietly() {
  local log="$work/log.$RANDOM"
  if ! "$@" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    fail "failed: $*"
  fi
  rm -f "$log"
}

# -----------------------------------------------------------------------------
begin "build and pack"
quietly npm run build
mkdir -p "$work/tarballs"
npm pack -w packages/core -w packages/testing -w packages/adapters --pack-destination "$work/tarballs" --json \
  >"$work/pack.json" 2>"$work/pack.log" || { cat "$work/pack.log" >&2; fail "npm pack failed"; }
node -e '
  const kib = (n) => (n / 1024).toFixed(0) + " KiB"
  for (const p of JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")))
    console.log(`  ${p.name}@${p.version}: ${p.filename} ${kib(p.size)} (${kib(p.unpackedSize)} unpacked, ${p.entryCount} files)`)
' "$work/pack.json"
version="$(node -p 'require("./packages/adapters/package.json").version')"
tarballs=()
for name in core testing adapters; do
  tarball="$work/tarballs/gavel-$name-$version.tgz"
  [ -f "$tarball" ] || fail "no $tarball"
  tar -tzf "$tarball" >"$work/contents"
  for file in package/package.json package/dist/index.js package/dist/index.d.ts package/src/index.ts; do
    grep -qx "$file" "$work/contents" || fail "$(basename "$tarball") lacks $file"
  done
  if grep -E '\.tsbuildinfo$|^package/test/|^package/build/|\.test\.ts$' "$work/contents"; then
    fail "$(basename "$tarball") holds build info or tests (above)"
  fi
  tarballs+=("$tarball")
done
grep -qx package/dist/bin/gavel.js <(tar -tzf "$work/tarballs/gavel-adapters-$version.tgz") \
  || fail "gavel-adapters-$version.tgz lacks the bin dist/bin/gavel.js"

# -----------------------------------------------------------------------------
begin "install the consumer project"
mkdir -p "$project"
cat >"$project/package.json" <<'JSON'
{ "name": "gavel-consumer-smoke", "private": true, "type": "module" }
JSON
# Install scripts are reviewed below (npm runs unreviewed ones with a
# warning); the addon is built by scripts/node.sh.
(cd "$project" && quietly npm install --ignore-scripts "${tarballs[@]}" "${peers[@]}")
(cd "$project" && quietly npm install-scripts approve better-sqlite3 \
  && quietly npm install-scripts deny msgpackr-extract @parcel/watcher)
pending="$(cd "$project" && npm install-scripts ls 2>&1)"
[ "$pending" = "No packages with unreviewed install scripts." ] \
  || fail "install scripts nobody reviewed (approve or deny them here, and in the docs):"$'\n'"$pending"
(cd "$project" && node -e '
  const deps = ["effect", "@effect/platform", "@effect/platform-node", "@effect/sql", "@effect/sql-sqlite-node",
    "@effect/cli", "better-sqlite3", "yaml", "typescript"]
  console.log("  " + deps.map((d) => `${d}@${require(`./node_modules/${d}/package.json`).version}`).join(" "))
')
cp scripts/consumer/smoke.mjs scripts/consumer/rules.yaml scripts/consumer/rules.json \
  scripts/consumer/consumer.ts scripts/consumer/tsconfig.*.json "$project/"

# The addon for every Node, in the background while the types are checked
# (in a process group of its own, so that a failure stops all of it).
setsid --wait bash -c 'set -e; project="$1"; shift
  for node in "$@"; do bash scripts/node.sh install "$node"; bash scripts/node.sh rebuild "$node" "$project"; done' \
  _ "$project" "${nodes[@]}" >"$work/addons.log" 2>&1 &
builder=$!

# -----------------------------------------------------------------------------
begin "type-check"
step="type-check consumer.ts (TypeScript $(cd "$project" && node_modules/.bin/tsc --version | sed 's/^Version //'))"
for config in "${configs[@]}"; do
  t="$(now_ms)"
  (cd "$project" && node_modules/.bin/tsc -p "tsconfig.$config.json") >"$work/tsc.log" 2>&1 \
    || { cat "$work/tsc.log" >&2; fail "tsc -p tsconfig.$config.json: the errors above"; }
  echo "  tsconfig.$config.json: ok ($(( ($(now_ms) - t) / 1000 )) s)"
done
mkdir -p "$work/typescript-7"
echo '{ "private": true }' >"$work/typescript-7/package.json"
(cd "$work/typescript-7" && quietly npm install --ignore-scripts "typescript@^7")
tsc7="$work/typescript-7/node_modules/.bin/tsc"
step="type-check consumer.ts (TypeScript $("$tsc7" --version | sed 's/^Version //'))"
for config in "${ts7_configs[@]}"; do
  t="$(now_ms)"
  (cd "$project" && "$tsc7" -p "tsconfig.$config.json") >"$work/tsc.log" 2>&1 \
    || { cat "$work/tsc.log" >&2; fail "tsc -p tsconfig.$config.json: the errors above"; }
  echo "  tsconfig.$config.json with $("$tsc7" --version): ok ($(( ($(now_ms) - t) / 1000 )) s)"
done

begin "wait for better-sqlite3 (node ${nodes[*]})"
if ! wait "$builder"; then
  builder=""
  cat "$work/addons.log" >&2
  fail "building better-sqlite3 (above)"
fi
builder=""

# -----------------------------------------------------------------------------
startups=()
gavel="$project/node_modules/.bin/gavel"
for node in "${nodes[@]}"; do
  begin "node $node"
  quietly bash scripts/node.sh rebuild "$node" "$project"
  bindir="$(bash scripts/node.sh bin "$node")"
  export PATH="$bindir:$PATH"
  node_version="$(node --version)"
  step="node $node ($node_version): smoke.mjs"
  node "$project/smoke.mjs" "$work/smoke-$node.db" || fail "smoke.mjs failed (above)"

  step="node $node ($node_version): gavel --help"
  best=""
  for _ in 1 2 3; do
    t="$(now_ms)"
    (cd / && "$gavel" --help) >"$work/help.out" 2>"$work/help.err" \
      || { cat "$work/help.err" >&2; fail "exit code $?"; }
    t=$(( $(now_ms) - t ))
    if [ -z "$best" ] || [ "$t" -lt "$best" ]; then best="$t"; fi
  done
  grep -q "audit verify" "$work/help.out" || fail "no 'audit verify' in the help"
  [ ! -s "$work/help.err" ] || { cat "$work/help.err" >&2; fail "wrote to stderr"; }
  startups+=("node $node_version: $best ms")

  step="node $node ($node_version): gavel --version"
  printed="$(cd / && "$gavel" --version)" || fail "exit code $?"
  [ "$(echo "$printed" | sed '/^$/d')" = "$version" ] || fail "printed '$printed', not $version"

  step="node $node ($node_version): gavel audit verify"
  code=0
  verified="$(cd / && "$gavel" audit verify --db "$work/smoke-$node.db")" || code=$?
  [ "$code" -eq 0 ] || fail "exit code $code: $verified"
  [[ "$verified" == "intact: "* ]] || fail "printed '$verified'"

  step="node $node ($node_version): gavel --help without @effect/cli"
  moved_cli="$work/effect-cli.moved"
  mv "$project/node_modules/@effect/cli" "$moved_cli"
  code=0
  (cd / && "$gavel" --help) >"$work/help.out" 2>"$work/help.err" || code=$?
  mv "$moved_cli" "$project/node_modules/@effect/cli"
  moved_cli=""
  [ "$code" -eq 5 ] || { cat "$work/help.err" >&2; fail "exit code $code, not 5"; }
  [ ! -s "$work/help.out" ] || fail "printed on stdout: $(head -c 300 "$work/help.out")"
  [ "$(wc -l <"$work/help.err")" -eq 1 ] && grep -q "@effect/cli" "$work/help.err" \
    || { cat "$work/help.err" >&2; fail "not exactly one line naming @effect/cli (above)"; }

  echo "  gavel on $node_version: --help in $best ms (best of 3), --version $version, audit verify: $verified"
  echo "  without @effect/cli: $(cat "$work/help.err")"
  PATH="${PATH#"$bindir:"}"
done

begin ""
echo "consumer-test: passed on ${nodes[*]} in $(( ($(now_ms) - started) / 1000 )) s"
join() { local out="" item; for item in "$@"; do out+="${out:+; }$item"; done; echo "$out"; }
echo "  gavel --help start-up: $(join "${startups[@]}")"
echo "  steps: $(join "${timings[@]}")"
