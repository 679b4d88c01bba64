#!/bin/sh
# tools/seam.sh — whether the store seam holds: nothing above
# framework/store/ calls through the backend table (->ops) or names a
# backend (its name as a string, its ops table, its native handle type or
# calls: PGconn, sqlite3_*). What differs between backends is a store
# operation or a capability flag (store/store.h). Prints one line per
# violation (FILE:LINE: TEXT) and exits 1 if there is one.
#   tools/seam.sh [ROOT]
root=${1:-.}
cd "$root" || exit 2
out=$(grep -rn -E -- '->ops|"postgres"|"sqlite"|PGconn|sqlite3_|rt__(pg|sqlite)_ops' \
          framework | grep -v '^framework/store/')
[ -z "$out" ] && exit 0
printf '%s\n' "$out"
exit 1
