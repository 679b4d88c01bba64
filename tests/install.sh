#!/bin/sh
# install.sh BUILD — `make install` into a temporary DESTDIR (PREFIX=/usr),
# then builds the README's example program against the staged copy with
# `pkg-config --cflags --libs ratchet`: linked dynamically (checked to load
# the staged libratchet.so.MAJOR) and statically (libratchet.a, with the
# sqlite3, -lm and -lpthread of `--static`; never libpq, which is loaded at
# run time for PostgreSQL URLs), runs both, and
# checks what they did. Then `make uninstall` must leave only directories.
# A second install with GNU directory overrides (prefix, libdir, MANDIR)
# must put the files there and uninstall them again. Runs as root or not.
set -eu
build=$1
make=${MAKE:-make}
cc=${CC:-cc}
tmp=$(mktemp -d /tmp/ratchet-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "install: $*" >&2; exit 1; }

stage=$tmp/stage
$make -s BUILD="$build" CC="$cc" install DESTDIR="$stage" PREFIX=/usr >"$tmp/make.log" 2>&1 ||
    { cat "$tmp/make.log" >&2; fail "make install failed"; }
lib=$stage/usr/lib

# pkg-config reads the staged ratchet.pc; the sysroot maps its /usr paths
# into the stage.
PKG_CONFIG_PATH=$lib/pkgconfig
PKG_CONFIG_SYSROOT_DIR=$stage
export PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
version=$(pkg-config --modversion ratchet) || fail "pkg-config does not find the staged ratchet.pc"
major=${version%%.*}
grep -qx 'prefix=/usr' "$lib/pkgconfig/ratchet.pc" || fail "ratchet.pc does not say prefix=/usr"

# The layout: the real shared library, its soname and dev links, the rest.
for f in bin/ratchet lib/libratchet.a "lib/libratchet.so.$version" include/ratchet.h \
         lib/pkgconfig/ratchet.pc share/man/man1/ratchet.1 share/man/man3/ratchet.3; do
    [ -f "$stage/usr/$f" ] && [ ! -h "$stage/usr/$f" ] || fail "missing /usr/$f"
done
[ "$(readlink "$lib/libratchet.so.$major")" = "libratchet.so.$version" ] ||
    fail "lib/libratchet.so.$major is not a link to libratchet.so.$version"
[ "$(readlink "$lib/libratchet.so")" = "libratchet.so.$major" ] ||
    fail "lib/libratchet.so is not a link to libratchet.so.$major"
readelf -d "$lib/libratchet.so.$version" | grep -q "(SONAME).*\[libratchet.so.$major\]" ||
    fail "libratchet.so.$version has no soname libratchet.so.$major"
[ -x "$stage/usr/bin/ratchet" ] || fail "bin/ratchet is not executable"
cmp -s include/ratchet.h "$stage/usr/include/ratchet.h" || fail "installed ratchet.h differs"
"$stage/usr/bin/ratchet" --version | grep -q "^ratchet $version " ||
    fail "bin/ratchet --version does not say $version"

tests/readme-example.sh --extract "$tmp/squares.c"
cflags="-std=c11 -Wall -Wextra -Werror ${SAN:-}"

# Dynamic: the program needs libratchet.so.MAJOR, found in the stage.
$cc $cflags "$tmp/squares.c" $(pkg-config --cflags --libs ratchet) -o "$tmp/squares-dyn"
readelf -d "$tmp/squares-dyn" | grep -q "(NEEDED).*\[libratchet.so.$major\]" ||
    fail "the dynamic program does not need libratchet.so.$major"
LD_LIBRARY_PATH=$lib ldd "$tmp/squares-dyn" | grep -q "libratchet.so.$major => $lib/libratchet.so.$major " ||
    fail "the dynamic program does not load the staged library: $(LD_LIBRARY_PATH=$lib ldd "$tmp/squares-dyn")"
LD_LIBRARY_PATH=$lib tests/readme-example.sh --check "$tmp/squares-dyn"

# Static: libratchet.a, with what --static adds for its dependencies.
libs=$(pkg-config --static --libs ratchet)
case " $libs " in *" -lratchet "*) ;; *) fail "pkg-config --static --libs: no -lratchet in '$libs'" ;; esac
for dep in $(pkg-config --libs-only-l sqlite3) -lm -lpthread; do
    case " $libs " in *" $dep "*) ;; *) fail "pkg-config --static --libs ratchet lacks $dep: '$libs'" ;; esac
done
case " $libs " in *" -lpq "*) fail "pkg-config --static --libs ratchet links libpq: '$libs'" ;; esac
# as README.md's Install section shows it
libs=$(pkg-config --static --libs ratchet | sed 's/-lratchet /-l:libratchet.a /')
$cc $cflags "$tmp/squares.c" $(pkg-config --cflags ratchet) $libs -o "$tmp/squares-static"
if readelf -d "$tmp/squares-static" | grep -q 'NEEDED.*libratchet'; then
    fail "the static program still needs libratchet.so"
fi
tests/readme-example.sh --check "$tmp/squares-static"

# Uninstall removes every file it installed, and only those.
$make -s BUILD="$build" CC="$cc" uninstall DESTDIR="$stage" PREFIX=/usr >"$tmp/make.log" 2>&1 ||
    { cat "$tmp/make.log" >&2; fail "make uninstall failed"; }
left=$(find "$stage" ! -type d)
[ -z "$left" ] || fail "make uninstall left: $left"

# GNU directory overrides, lowercase and uppercase.
stage=$tmp/stage2
dirs="prefix=/opt/rt libdir=/opt/rt/lib64 MANDIR=/opt/rt/man"
$make -s BUILD="$build" CC="$cc" install DESTDIR="$stage" $dirs >"$tmp/make.log" 2>&1 ||
    { cat "$tmp/make.log" >&2; fail "make install $dirs failed"; }
for f in bin/ratchet "lib64/libratchet.so.$version" lib64/libratchet.a include/ratchet.h \
         lib64/pkgconfig/ratchet.pc man/man1/ratchet.1 man/man3/ratchet.3; do
    [ -f "$stage/opt/rt/$f" ] || fail "$dirs: missing /opt/rt/$f"
done
grep -qx 'libdir=${prefix}/lib64' "$stage/opt/rt/lib64/pkgconfig/ratchet.pc" ||
    fail "$dirs: ratchet.pc does not say libdir=\${prefix}/lib64"
$make -s BUILD="$build" CC="$cc" uninstall DESTDIR="$stage" $dirs >"$tmp/make.log" 2>&1 ||
    { cat "$tmp/make.log" >&2; fail "make uninstall $dirs failed"; }
left=$(find "$stage" ! -type d)
[ -z "$left" ] || fail "make uninstall $dirs left: $left"

echo "install: make install/uninstall, README program built with pkg-config against the staged $version, dynamic and static: ok"
