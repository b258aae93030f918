#!/usr/bin/env bash
# steps.sh <name> <command> [<name> <command>]...: runs each command (a bash string) in turn,
# saying where a long target is: "[n/N] name" as a step starts, "[n/N] name done in X s" as it
# ends. The first failure stops the rest, with its exit status.
set -euo pipefail
if [ $# -eq 0 ] || [ $(($# % 2)) -ne 0 ]; then
  echo 'usage: steps.sh <name> <command> [<name> <command>]...' >&2
  exit 2
fi
total=$(($# / 2)) n=0 begun=$SECONDS
# Under make -n (MAKEFLAGS' first word holds the one-letter flags), only say what would run.
flags=${MAKEFLAGS:-}; flags=${flags%% *}
if [ -n "$flags" ] && [ "${flags#-}" = "$flags" ] && [ "${flags#*n}" != "$flags" ]; then
  while [ $# -gt 0 ]; do n=$((n + 1)); printf '[%d/%d] %s: %s\n' "$n" "$total" "$1" "$2"; shift 2; done
  exit 0
fi
while [ $# -gt 0 ]; do
  name=$1 command=$2 started=$SECONDS
  shift 2
  n=$((n + 1))
  printf '[%d/%d] %s\n' "$n" "$total" "$name" >&2
  rc=0
  bash -euo pipefail -c "$command" || rc=$?
  if [ "$rc" -ne 0 ]; then
    printf '[%d/%d] %s failed after %d s\n' "$n" "$total" "$name" $((SECONDS - started)) >&2
    exit "$rc"
  fi
  printf '[%d/%d] %s done in %d s' "$n" "$total" "$name" $((SECONDS - started)) >&2
  if [ "$n" -eq "$total" ] && [ "$total" -gt 1 ]; then printf ' (all %d s)' $((SECONDS - begun)) >&2; fi
  printf '\n' >&2
done
