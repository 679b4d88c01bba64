#!/bin/sh
# man-pages.sh RATCHET_BIN MANDIR RATCHET.H — the man pages say what the
# program and the header have: ratchet.1 has a section (.SS COMMAND) for
# every command `ratchet --help` lists, naming every flag that command's
# --help shows, and documents the global options, exit codes and
# environment variables of `ratchet --help`; ratchet.3 names every
# function, static inline helper and type of the header (tests/api-names.sh)
# both in its SYNOPSIS and in the text after it. Both pages are plain ASCII,
# carry the header's version, and (when groff is installed) format without
# a warning.
set -eu
bin=$1
dir=$2
header=$3
here=$(dirname "$0")
fail() { echo "man-pages: $*" >&2; status=1; }
status=0

# The text of section $2 (".SS run", ".SH SYNOPSIS") of page $1, up to the
# next .SS or .SH.
section() {
    awk -v start="$2" '$0 == start { on = 1; next } on && /^\.S[SH] / { exit } on' "$1"
}
# The flags roff text on stdin names (\-\-chunk\-ms), as --chunk-ms.
roff_flags() {
    grep -o '\\-\\-[a-z0-9]*\(\\-[a-z0-9]*\)*' | sed 's/\\-/-/g' | sort -u
}
# The lines of file $1 that are not in file $2 (both sorted), after prefix $3.
lacks() {
    comm -23 "$1" "$2" | sed "s|^|$3|"
}
# The flags a usage text shows: in its synopsis (up to the first empty
# line) and its option lines ("  --flag ..."), not in prose.
flags() {
    awk 'NR == 1 { syn = 1 } /^$/ { syn = 0 } syn || /^  --/' |
        grep -o '\(^\|[[ (]\)--[a-z][a-z0-9-]*' | sed 's/^[[ (]//' | sort -u
}

version=$(awk '$2 == "RT_VERSION" { gsub(/"/, "", $3); print $3 }' "$header")
for page in "$dir/ratchet.1" "$dir/ratchet.3"; do
    [ -f "$page" ] || { fail "$page is missing"; continue; }
    if LC_ALL=C grep -n '[^ -~	]' "$page" >&2; then fail "$page: not ASCII (above)"; fi
    grep -q "^\.TH .*\"ratchet $version\"" "$page" || fail "$page: .TH does not say ratchet $version"
    if command -v groff >/dev/null 2>&1; then
        out=$(LC_ALL=C groff -man -ww -z "$page" 2>&1) || true
        [ -z "$out" ] || fail "$page: groff warns: $out"
    else
        echo "man-pages: groff not installed, $page not formatted"
    fi
done
page=$dir/ratchet.1
help=$("$bin" --help)
tmp=$(mktemp -d /tmp/ratchet-man.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# Every command, and every flag its --help shows, in the command's section.
commands=$(printf '%s\n' "$help" | sed -n '/^commands:/,/^$/p' | awk 'NR > 1 && /^  [a-z]/ { print $1 }')
[ -n "$commands" ] || fail "no commands in '$bin --help'"
for cmd in $commands; do
    section "$page" ".SS $cmd" >"$tmp/text"
    [ -s "$tmp/text" ] || { fail "ratchet.1 has no section '.SS $cmd'"; continue; }
    [ "$cmd" = help ] && continue
    "$bin" "$cmd" --help | flags | grep -v -x -e --help -e --db >"$tmp/want" || true
    roff_flags <"$tmp/text" >"$tmp/have"
    lacks "$tmp/want" "$tmp/have" "ratchet.1: section $cmd does not name " >>"$tmp/missing"
done
printf '%s\n' "$help" | sed -n '/^options:/,/^$/p' | flags >"$tmp/want"
section "$page" ".SH OPTIONS" | roff_flags >"$tmp/have"
lacks "$tmp/want" "$tmp/have" "ratchet.1: OPTIONS does not name " >>"$tmp/missing"
printf '%s\n' "$help" | sed -n '/^exit codes:/,/^environment:/p' |
    grep -o '[0-9][0-9]* [a-z]' | cut -d' ' -f1 | sort -u >"$tmp/want"
section "$page" ".SH EXIT STATUS" | sed -n 's/^\.B \([0-9]*\)$/\1/p' | sort -u >"$tmp/have"
lacks "$tmp/want" "$tmp/have" "ratchet.1: EXIT STATUS lacks " >>"$tmp/missing"
printf '%s\n' "$help" | grep '^environment:' | grep -o 'RATCHET_[A-Z_]*' | sort -u >"$tmp/want"
section "$page" ".SH ENVIRONMENT" | grep -o 'RATCHET_[A-Z_]*' | sort -u >"$tmp/have"
lacks "$tmp/want" "$tmp/have" "ratchet.1: ENVIRONMENT lacks " >>"$tmp/missing"

# Every name of the header, in ratchet.3's synopsis and description.
page=$dir/ratchet.3
for what in functions inline types; do "$here/api-names.sh" $what "$header"; done |
    sort -u >"$tmp/names"
[ "$(wc -l <"$tmp/names")" -gt 60 ] || fail "found too few names in $header"
section "$page" ".SH SYNOPSIS" | grep -owF -f "$tmp/names" | sort -u >"$tmp/have"
lacks "$tmp/names" "$tmp/have" "ratchet.3: SYNOPSIS lacks " >>"$tmp/missing"
awk '/^\.SH DESCRIPTION/ { on = 1 } on' "$page" | grep -owF -f "$tmp/names" | sort -u >"$tmp/have"
lacks "$tmp/names" "$tmp/have" "ratchet.3: DESCRIPTION lacks " >>"$tmp/missing"
if [ -s "$tmp/missing" ]; then
    cat "$tmp/missing" >&2
    status=1
fi

[ $status = 0 ] || exit 1
echo "man-pages: ratchet.1 covers $(echo $commands | wc -w) commands and their flags, ratchet.3 the $(wc -l <"$tmp/names") names of $(basename "$header"): ok"
