# ratchet — build, test, demo.
#   make            build/libratchet.a, build/libratchet.so, build/ratchet
#   make demo       run the demo job on SQLite (interrupt + resume)
#   make check      unit and integration tests (Check)
#   make asan       the same tests under AddressSanitizer + UBSan
#   make torture    the torture driver at ten times check's counts (tests/torture),
#                   and the pooler and clock tcases (suites postgres and lease)
#                   at their long sizes
#   make bench      benchmarks (not part of check)
#   make fuzz       libFuzzer targets, FUZZ_SECONDS each (clang; not part of check)
#   make install    library, header, CLI, pkg-config file and man pages under
#                   $(DESTDIR)$(PREFIX) (default /usr/local); make uninstall
#   make includes   which library file includes which (the layers, base < store
#                   < core < service < cli, are checked by make check)
#   make clean
#
# BUILD selects the output directory (make asan uses build/asan).

BUILD    ?= build
CC       ?= cc
CFLAGS   ?= -O2 -g
SAN      ?=
WARN     := -std=c11 -Wall -Wextra -Werror -Wshadow -Wundef -Wwrite-strings \
            -Wmissing-prototypes -Wstrict-prototypes -Wno-missing-field-initializers
PKG_CONFIG ?= pkg-config

need_pkg = $(shell $(PKG_CONFIG) --exists $(1) || echo $(1))
MISSING  := $(strip $(call need_pkg,sqlite3) $(call need_pkg,libpq))
DEP_CFLAGS := $(shell $(PKG_CONFIG) --cflags sqlite3 libpq 2>/dev/null)
# The library and the CLI do not link libpq: framework/store/pq_loader.c loads it
# with dlopen() for PostgreSQL URLs only (libpq-dev is still needed for its
# header). dlopen is in libc from glibc 2.34 on; older ones need -ldl.
DL_LIBS    := $(shell echo 'void *dlopen(const char *, int); int main(void) { return !dlopen(0, 0); }' | \
                $(CC) -x c - -o /dev/null 2>/dev/null || echo -ldl)
DEP_LIBS   := $(shell $(PKG_CONFIG) --libs sqlite3 2>/dev/null) -lm -lpthread $(DL_LIBS)
# Test, bench and fuzz programs that call libpq themselves.
PQ_LIBS    := $(shell $(PKG_CONFIG) --libs libpq 2>/dev/null)
CHECK_CFLAGS := $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell $(PKG_CONFIG) --libs check 2>/dev/null)

ALL_CFLAGS = $(WARN) $(CFLAGS) $(SAN) -fPIC -fvisibility=hidden \
             -Iinclude -Iframework -I$(BUILD) $(DEP_CFLAGS) -MMD -MP
LDFLAGS_ALL = $(SAN) $(LDFLAGS)

LIB_SRC  := $(wildcard framework/*/*.c)
LIB_OBJ  := $(LIB_SRC:framework/%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/migrations_gen.o
JOB_SRC  := $(wildcard jobs/*.c)
JOB_OBJ  := $(JOB_SRC:jobs/%.c=$(BUILD)/obj/jobs/%.o)
MIGRATIONS := $(sort $(wildcard migrations/sqlite/*.sql)) $(sort $(wildcard migrations/postgres/*.sql))
# The version is the one in include/ratchet.h; the soname carries its major.
rt_define = $(shell awk '$$1 ~ /define$$/ && $$2 == "$(1)" { print $$3 }' include/ratchet.h)
VERSION_MAJOR := $(call rt_define,RT_VERSION_MAJOR)
VERSION  := $(VERSION_MAJOR).$(call rt_define,RT_VERSION_MINOR).$(call rt_define,RT_VERSION_PATCH)
ifneq ($(call rt_define,RT_VERSION),"$(VERSION)")
$(error include/ratchet.h: RT_VERSION is not "$(VERSION)" (RT_VERSION_MAJOR.MINOR.PATCH))
endif
SONAME   := libratchet.so.$(VERSION_MAJOR)
REALNAME := libratchet.so.$(VERSION)

.PHONY: all deps includes demo check torture asan bench fuzz fuzz-run clean install uninstall FORCE
all: deps $(BUILD)/libratchet.a $(BUILD)/libratchet.so $(BUILD)/ratchet

deps:
ifneq ($(MISSING),)
	@echo "missing build dependencies: $(MISSING)"; \
	 echo "install them with: apt-get install -y libsqlite3-dev libpq-dev check pkg-config"; exit 1
endif

$(BUILD)/obj/%.o: framework/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/obj/jobs/%.o: jobs/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/migrations_gen.c: migrations/embed.sh $(MIGRATIONS)
	@mkdir -p $(dir $@)
	sh migrations/embed.sh $@ $(MIGRATIONS)

$(BUILD)/obj/migrations_gen.o: $(BUILD)/migrations_gen.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libratchet.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/libratchet.so: $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,$(SONAME) -o $@ $^ $(LDFLAGS_ALL) $(DEP_LIBS)

$(BUILD)/ratchet: $(JOB_OBJ) $(BUILD)/libratchet.a
	$(CC) -o $@ $(JOB_OBJ) $(BUILD)/libratchet.a $(LDFLAGS_ALL) $(DEP_LIBS)

# ------------------------------------------------------------------ tests
TEST_SRC  := $(wildcard tests/check_*.c) tests/harness.c tests/invariants.c tests/pgproxy.c
TEST_OBJ  := $(TEST_SRC:tests/%.c=$(BUILD)/obj/tests/%.o)
TESTJOB_OBJ := $(BUILD)/obj/tests/testjobs.o $(filter-out $(BUILD)/obj/jobs/main.o,$(JOB_OBJ))
FUZZ_NAMES  := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_REPLAY := $(FUZZ_NAMES:%=$(BUILD)/fuzz/replay_%)

$(BUILD)/obj/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -Ijobs -Itests -c $< -o $@

$(BUILD)/ratchet-test: $(TESTJOB_OBJ) $(BUILD)/libratchet.a
	$(CC) -o $@ $(TESTJOB_OBJ) $(BUILD)/libratchet.a $(LDFLAGS_ALL) $(DEP_LIBS)

# The test build with failpoints (framework/store/failpoint.h, docs/RELIABILITY.md):
# only the library files that use a hook are compiled again, with
# -DRT_TEST_HOOKS, into obj-hooks/; the rest is shared with libratchet.a (no
# struct differs between the two). build/ratchet itself has no hooks.
HOOK_SRC := $(shell grep -l 'RT_FAILPOINT\|RT_UNFENCE\|RT_TEST_HOOKS' framework/*/*.c)
HOOK_OBJ := $(HOOK_SRC:framework/%.c=$(BUILD)/obj-hooks/%.o)
HOOKS_LIB_OBJ := $(filter-out $(HOOK_SRC:framework/%.c=$(BUILD)/obj/%.o),$(LIB_OBJ)) $(HOOK_OBJ)

$(BUILD)/obj-hooks/%.o: framework/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DRT_TEST_HOOKS -c $< -o $@

$(BUILD)/libratchet-hooks.a: $(HOOKS_LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/ratchet-hooks: $(TESTJOB_OBJ) $(BUILD)/libratchet-hooks.a
	$(CC) -o $@ $(TESTJOB_OBJ) $(BUILD)/libratchet-hooks.a $(LDFLAGS_ALL) $(DEP_LIBS)

# A program that embeds ratchet: rt_run without rt_main (tests/embed_main.c),
# run by the embed suite from beside build/ratchet.
$(BUILD)/ratchet-embed: $(BUILD)/obj/tests/embed_main.o $(BUILD)/libratchet.a
	$(CC) -o $@ $< $(BUILD)/libratchet.a $(LDFLAGS_ALL) $(DEP_LIBS)

# The Check program links the failpoint build too: the runner suite's faults
# part (tests/check_runner_faults.c) sets failpoints in process.
$(BUILD)/check_ratchet: $(TEST_OBJ) $(BUILD)/libratchet-hooks.a | $(BUILD)/ratchet-embed
	$(CC) -o $@ $(TEST_OBJ) $(BUILD)/libratchet-hooks.a $(LDFLAGS_ALL) $(CHECK_LIBS) $(DEP_LIBS) $(PQ_LIBS)

# The torture driver (tests/torture, docs/RELIABILITY.md): the real
# build/ratchet under random SIGKILL, SIGTERM, SIGSTOP and database faults on
# both backends. check runs it at TORTURE_SCALE=1 after the Check suites (on
# the same throwaway PostgreSQL); make torture at ten times the counts.
TORTURE_SRC := $(wildcard tests/torture/*.c) tests/invariants.c
TORTURE_OBJ := $(TORTURE_SRC:tests/%.c=$(BUILD)/obj/tests/%.o)

# It links the library: started with TORTURE_RATCHET=1 it is rt_main() over
# jobs of its own (tests/torture/mjob.c), for the model scenarios.
$(BUILD)/torture: $(TORTURE_OBJ) $(BUILD)/libratchet.a
	$(CC) -o $@ $(TORTURE_OBJ) $(BUILD)/libratchet.a $(LDFLAGS_ALL) $(DEP_LIBS) $(PQ_LIBS)

torture: all $(BUILD)/torture $(BUILD)/ratchet-test $(BUILD)/check_ratchet
	RATCHET_BIN=$(abspath $(BUILD)/ratchet) TORTURE_SCALE=$${TORTURE_SCALE:-10} \
	  tests/run-tests.sh $(abspath $(BUILD)/torture)
	for part in postgres:pooler lease:clock; do \
	  RATCHET_BIN=$(abspath $(BUILD)/ratchet) RATCHET_TEST_BIN=$(abspath $(BUILD)/ratchet-test) \
	    RATCHET_TEST_LONG=1 CK_RUN_SUITE=$${part%%:*} CK_RUN_CASE=$${part#*:} \
	    tests/run-tests.sh $(abspath $(BUILD)/check_ratchet) || exit 1; \
	done

# tests/memcheck.sh: the CLI's main paths under valgrind (no leak, no
# error), on run-tests.sh's PostgreSQL; not in sanitizer builds (valgrind
# cannot run an ASan binary).
MEMCHECK = $(if $(SAN),,$(abspath tests/memcheck.sh))

check: all $(BUILD)/ratchet-test $(BUILD)/ratchet-hooks $(BUILD)/check_ratchet $(FUZZ_REPLAY) \
       $(BUILD)/torture
	tools/includes.sh --check
	tools/seam.sh
	CC="$(CC)" SAN="$(SAN)" tests/readme-example.sh $(BUILD)
	tests/fuzz/replay.sh $(BUILD) $(FUZZ_NAMES)
	tests/exports.sh $(BUILD)/libratchet.so include/ratchet.h
	tests/libpq-loading.sh $(BUILD)
	tests/man-pages.sh $(BUILD)/ratchet docs/man include/ratchet.h
	CC="$(CC)" SAN="$(SAN)" MAKE="$(MAKE)" tests/install.sh $(BUILD)
	RATCHET_BIN=$(abspath $(BUILD)/ratchet) RATCHET_TEST_BIN=$(abspath $(BUILD)/ratchet-test) \
	  RATCHET_HOOKS_BIN=$(abspath $(BUILD)/ratchet-hooks) \
	  tests/run-tests.sh $(abspath $(BUILD)/check_ratchet) $(MEMCHECK) $(abspath $(BUILD)/torture)

# Every sanitized start costs several times a plain one: the torture driver
# runs a fifth of its counts there.
asan:
	$(MAKE) BUILD=build/asan CC=clang CFLAGS="-O1 -g" TORTURE_SCALE=0.2 \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" check

# Which library file includes which (tools/includes.sh; check fails when a
# layer includes one above it).
includes:
	tools/includes.sh

demo: all
	sh tests/demo.sh $(BUILD)/ratchet

# ------------------------------------------------------------------ bench
# make bench: ratchet against hand-written sqlite3 and libpq loops, and the
# machine's limits; prints one table (docs/BENCHMARKS.md). Not part of check.
# PostgreSQL: BENCH_PG_URL, else a throwaway durable server (fsync on) from
# tests/pg-server.sh; BENCH_SKIP_PG=1 for SQLite only. Sizes: BENCH_*
# environment variables (tests/bench/bench.c).
BENCH_BINS := $(BUILD)/bench/bench $(BUILD)/bench/baseline_sqlite $(BUILD)/bench/baseline_pg

$(BENCH_BINS): $(BUILD)/bench/%: tests/bench/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LDFLAGS_ALL) $(DEP_LIBS) $(PQ_LIBS)

bench: all $(BENCH_BINS)
	tests/bench/run-bench.sh $(BUILD)/bench/bench $(BUILD)/ratchet \
	  $(BUILD)/bench/baseline_sqlite $(BUILD)/bench/baseline_pg

# --------------------------------------------------------------- install
# make install [PREFIX=/usr/local] [DESTDIR=/staging]: the library (static,
# and shared as libratchet.so.$(VERSION) with its soname and dev links), the
# header, the CLI, ratchet.pc and the man pages. Directories follow the GNU
# names (prefix, bindir, libdir, includedir, mandir) or BINDIR, LIBDIR,
# INCLUDEDIR, MANDIR, PKGCONFIGDIR. make uninstall removes exactly these files.
PREFIX      ?= /usr/local
prefix      ?= $(PREFIX)
exec_prefix ?= $(prefix)
bindir      ?= $(exec_prefix)/bin
libdir      ?= $(exec_prefix)/lib
includedir  ?= $(prefix)/include
datarootdir ?= $(prefix)/share
mandir      ?= $(datarootdir)/man
BINDIR      ?= $(bindir)
LIBDIR      ?= $(libdir)
INCLUDEDIR  ?= $(includedir)
MANDIR      ?= $(mandir)
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
INSTALL     ?= install
# ratchet.pc names its directories relative to ${prefix} where they are.
pc_dir = $(patsubst $(prefix)/%,$${prefix}/%,$(1))

$(BUILD)/ratchet.pc: ratchet.pc.in include/ratchet.h FORCE
	@mkdir -p $(dir $@)
	sed -e 's|@prefix@|$(prefix)|' -e 's|@libdir@|$(call pc_dir,$(LIBDIR))|' \
	    -e 's|@includedir@|$(call pc_dir,$(INCLUDEDIR))|' -e 's|@version@|$(VERSION)|' \
	    -e 's|@libs_private@|$(strip $(DEP_LIBS))|' -e '/^#/d' ratchet.pc.in >$@

install: all $(BUILD)/ratchet.pc
	$(INSTALL) -d "$(DESTDIR)$(BINDIR)" "$(DESTDIR)$(LIBDIR)" "$(DESTDIR)$(INCLUDEDIR)" \
	  "$(DESTDIR)$(PKGCONFIGDIR)" "$(DESTDIR)$(MANDIR)/man1" "$(DESTDIR)$(MANDIR)/man3"
	$(INSTALL) -m 755 $(BUILD)/ratchet "$(DESTDIR)$(BINDIR)/ratchet"
	$(INSTALL) -m 644 $(BUILD)/libratchet.a "$(DESTDIR)$(LIBDIR)/libratchet.a"
	$(INSTALL) -m 755 $(BUILD)/libratchet.so "$(DESTDIR)$(LIBDIR)/$(REALNAME)"
	ln -sf $(REALNAME) "$(DESTDIR)$(LIBDIR)/$(SONAME)"
	ln -sf $(SONAME) "$(DESTDIR)$(LIBDIR)/libratchet.so"
	$(INSTALL) -m 644 include/ratchet.h "$(DESTDIR)$(INCLUDEDIR)/ratchet.h"
	$(INSTALL) -m 644 $(BUILD)/ratchet.pc "$(DESTDIR)$(PKGCONFIGDIR)/ratchet.pc"
	$(INSTALL) -m 644 docs/man/ratchet.1 "$(DESTDIR)$(MANDIR)/man1/ratchet.1"
	$(INSTALL) -m 644 docs/man/ratchet.3 "$(DESTDIR)$(MANDIR)/man3/ratchet.3"

uninstall:
	rm -f "$(DESTDIR)$(BINDIR)/ratchet" "$(DESTDIR)$(LIBDIR)/libratchet.a" \
	  "$(DESTDIR)$(LIBDIR)/$(REALNAME)" "$(DESTDIR)$(LIBDIR)/$(SONAME)" \
	  "$(DESTDIR)$(LIBDIR)/libratchet.so" "$(DESTDIR)$(INCLUDEDIR)/ratchet.h" \
	  "$(DESTDIR)$(PKGCONFIGDIR)/ratchet.pc" "$(DESTDIR)$(MANDIR)/man1/ratchet.1" \
	  "$(DESTDIR)$(MANDIR)/man3/ratchet.3"

FORCE:

# ------------------------------------------------------------------ fuzz
# make fuzz: each libFuzzer target tests/fuzz/fuzz_NAME.c, built with clang,
# ASan and UBSan (the library too, with fuzzer coverage) into
# build/fuzz/fuzz/, runs FUZZ_SECONDS (default 60) from its seed corpus
# tests/fuzz/corpus/NAME and tests/fuzz/regressions/NAME, one at a time;
# then a table of executions per target. FUZZ_TARGETS picks some
# (default all: $(FUZZ_NAMES)). check replays the corpus and the
# regressions through the same targets with tests/fuzz/replay.c instead,
# with any compiler.
FUZZ_TARGETS ?= $(FUZZ_NAMES)
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS = $(filter-out -MMD -MP,$(ALL_CFLAGS)) -Itests/fuzz

$(BUILD)/fuzz/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c tests/fuzz/fuzz.h $(BUILD)/libratchet.a
	@mkdir -p $(dir $@)
	$(CC) $(FUZZ_CFLAGS) -o $@ tests/fuzz/fuzz_$*.c tests/fuzz/replay.c \
	  $(BUILD)/libratchet.a $(LDFLAGS_ALL) $(DEP_LIBS) $(PQ_LIBS)

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(BUILD)/libratchet.a
	@mkdir -p $(dir $@)
	$(CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(BUILD)/libratchet.a \
	  $(LDFLAGS_ALL) $(DEP_LIBS) $(PQ_LIBS)

fuzz:
	$(MAKE) BUILD=build/fuzz CC=clang CFLAGS="-O1 -g" \
	  SAN="-fsanitize=address,undefined,fuzzer-no-link -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  fuzz-run

fuzz-run: $(FUZZ_TARGETS:%=$(BUILD)/fuzz/fuzz_%)
	tests/fuzz/run-fuzz.sh $(BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj $(BUILD)/obj-hooks -name '*.d' 2>/dev/null)
