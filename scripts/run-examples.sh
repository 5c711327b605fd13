#!/usr/bin/env bash
# Runs every examples/*.ts with tsx; fails on the first example that fails.
# examples/multi-instance.ts needs GAVEL_DATABASE_URL (a Postgres database;
# .ci/run sets it) and says it skipped without one.
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob
examples=(examples/*.ts)
if [ ${#examples[@]} -eq 0 ]; then
  echo "no examples found" >&2
  exit 1
fi
for example in "${examples[@]}"; do
  echo "::: $example"
  npx tsx "$example"
done
echo "${#examples[@]} examples ran"
