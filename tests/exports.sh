#!/bin/sh
# exports.sh LIBRATCHET.SO RATCHET.H — the shared library exports exactly
# the public API: every function declared in the header (outside comments,
# macros and static inline helpers; tests/api-names.sh) is a defined
# dynamic symbol, and no other symbol is (internal rt__* names, helpers,
# data), apart from the few the linker itself may define.
set -eu
so=$1
header=$2
tmp=$(mktemp -d /tmp/ratchet-exports.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# Functions the header declares (tests/api-names.sh).
"$(dirname "$0")/api-names.sh" functions "$header" >"$tmp/declared"
grep -qx rt_main "$tmp/declared" ||
    { echo "exports: found no declaration of rt_main in $header (parser broken?)" >&2; exit 1; }

nm -D --defined-only "$so" | awk 'NF >= 3 { print $3 }' |
    grep -v -x -e _init -e _fini -e _edata -e _end -e __bss_start | sort -u >"$tmp/exported"

missing=$(comm -23 "$tmp/declared" "$tmp/exported")
extra=$(comm -13 "$tmp/declared" "$tmp/exported")
status=0
if [ -n "$missing" ]; then
    echo "exports: declared in $header but not exported by $so:" $missing >&2
    status=1
fi
if [ -n "$extra" ]; then
    echo "exports: exported by $so but not public API in $header:" $extra >&2
    status=1
fi
[ $status = 0 ] || exit 1
echo "exports: $so exports exactly the $(wc -l <"$tmp/declared") functions of $header: ok"
