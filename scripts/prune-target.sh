#!/usr/bin/env bash
# Keeps a long-lived CARGO_TARGET_DIR from filling the disk.
#
# Every change to a crate's dependencies or flags leaves another copy of each
# test binary (~250 MB) and another incremental cache behind; after a few
# hundred builds the target directory fills the disk and the linker dies with
# a bus error. When less than SQUALL_MIN_FREE_GIB (default 30) GiB are free,
# this deletes all but the two newest copies of every executable in
# target/debug/deps and of every incremental cache (two: a crate's library and
# its unit tests share a name). Cargo rebuilds anything it still needs.
set -euo pipefail
target="${CARGO_TARGET_DIR:-$HOME/.cache/squall/target}"
min_free_gib="${SQUALL_MIN_FREE_GIB:-30}"
[ -d "$target" ] || exit 0
free_gib=$(( $(df -Pk "$target" | awk 'NR==2 {print $4}') / 1024 / 1024 ))
if [ "$free_gib" -ge "$min_free_gib" ]; then
  exit 0
fi
echo "prune-target: ${free_gib} GiB free below ${target}; deleting stale build outputs" >&2

# Prints all but the two newest of the paths read from stdin that share a
# name up to their last '-' (cargo's hash suffix).
stale() {
  while IFS= read -r path; do
    name=$(basename "$path")
    printf '%s\t%s\t%s\n' "${name%-*}" "$(stat -c %Y "$path")" "$path"
  done | sort -t$'\t' -k1,1 -k2,2nr | awk -F'\t' '{ if (++seen[$1] > 2) print $3 }'
}

for profile in "$target"/*/; do
  if [ -d "$profile/deps" ]; then
    find "$profile/deps" -maxdepth 1 -type f -executable ! -name '*.*' | stale | xargs -r rm -f
  fi
  if [ -d "$profile/incremental" ]; then
    find "$profile/incremental" -mindepth 1 -maxdepth 1 -type d | stale | xargs -r rm -rf
  fi
done
echo "prune-target: $(( $(df -Pk "$target" | awk 'NR==2 {print $4}') / 1024 / 1024 )) GiB free now" >&2
