#!/bin/sh
# api-names.sh functions|inline|types RATCHET.H — the public names a header
# declares, one a line, sorted: the library's functions (what the shared
# library must export), the static inline helpers, or the types (typedef
# names, and the tags of enums without one). Comments and preprocessor lines (with their
# continuations) are left out first. tests/exports.sh and tests/man-pages.sh
# read the API from here.
set -eu
what=$1
header=$2

# The header without comments and preprocessor lines.
code() {
    awk '
        { text = text $0 "\n" }
        END {
            while ((i = index(text, "/*")) > 0) {
                rest = substr(text, i + 2)
                j = index(rest, "*/")
                text = substr(text, 1, i - 1) " " (j ? substr(rest, j + 2) : "")
            }
            n = split(text, ls, "\n")
            for (k = 1; k <= n; k++) {
                l = ls[k]
                if (cont || l ~ /^[ \t]*#/) { cont = (l ~ /\\$/); continue }
                print l
            }
        }' "$header"
}

case $what in
functions)
    code | grep -v '^[[:space:]]*static[[:space:]]\{1,\}inline' |
        grep -o 'rt_[a-z0-9_]*[[:space:]]*(' | sed 's/[[:space:]]*($//' ;;
inline)
    code | grep '^[[:space:]]*static[[:space:]]\{1,\}inline' |
        grep -o 'rt_[a-z0-9_]*[[:space:]]*(' | sed 's/[[:space:]]*($//' ;;
types)
    code | tr '\n' ' ' | tr ';' '\n' | grep '^[[:space:]]*\(}\|typedef\)' |
        grep -o 'rt_[a-z0-9_]*[[:space:]]*$\|(\*rt_[a-z0-9_]*)' | tr -d '(*) '
    code | grep -v typedef | grep -o 'enum rt_[a-z0-9_]*' ;;
*)
    echo "usage: api-names.sh functions|inline|types HEADER" >&2
    exit 2 ;;
esac | sort -u
