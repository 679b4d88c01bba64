#!/bin/sh
# tools/includes.sh — which library file includes which, and whether the
# layers hold: a file in framework/LAYER/ may include only its own layer's
# headers and those of the layers below it (base < store < core < service
# < cli). The CLI is a client of ratchet.h: a file in framework/cli/ may
# include only ratchet.h and cli/ headers - but cli/cli.h, which includes
# service/cli_entry.h (the CLI's entry points below it; no other file may
# include that header but its own .c, and it includes only ratchet.h).
# Prints one line per file
# ("FILE: INCLUDES"); with --check, prints only the violations and exits 1
# if there is one.
#   tools/includes.sh [--check] [ROOT]
check=0
[ "$1" = --check ] && { check=1; shift; }
root=${1:-.}
cd "$root" || exit 2
rank() {
    case $1 in
    base/*) echo 1 ;; store/*) echo 2 ;; core/*) echo 3 ;;
    service/*) echo 4 ;; cli/*) echo 5 ;; *) echo 0 ;;
    esac
}
bad=0
for f in framework/*/*.[ch]; do
    rel=${f#framework/}
    incs=$(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f" | tr '\n' ' ')
    [ $check = 0 ] && echo "$rel: $incs"
    me=$(rank "$rel")
    for i in $incs; do
        [ "$i" = ratchet.h ] && continue
        if [ "$i" = service/cli_entry.h ] && [ "$rel" != cli/cli.h ] &&
            [ "$rel" != service/cli_entry.c ]; then
            echo "$rel includes $i, which only cli/cli.h may include"; bad=1
        fi
        if [ "$rel" = service/cli_entry.h ]; then
            echo "$rel includes $i: it may include only ratchet.h"; bad=1
        fi
        case $rel:$i in
        cli/cli.h:service/cli_entry.h) ;;
        cli/*:cli/*) ;;
        cli/*)
            echo "$rel includes $i: cli/ may include only ratchet.h and cli/ headers"
            bad=1 ;;
        esac
        r=$(rank "$i")
        if [ "$r" = 0 ]; then
            echo "$rel includes $i, which is in no layer"; bad=1
        elif [ "$r" -gt "$me" ]; then
            echo "$rel includes $i, a layer above its own"; bad=1
        fi
    done
done
[ $check = 1 ] && [ $bad = 1 ] && exit 1
exit 0
