# ratchet — build, test, demo.
#   make            build/libratchet.a, build/libratchet.so, build/ratchet
#   make demo       run the demo job on SQLite (interrupt + resume)
#   make check      unit and integration tests (Check)
#   make asan       the same tests under AddressSanitizer + UBSan
#   make bench      benchmarks (not part of check)
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
DEP_LIBS   := $(shell $(PKG_CONFIG) --libs sqlite3 libpq 2>/dev/null) -lm -lpthread
CHECK_CFLAGS := $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell $(PKG_CONFIG) --libs check 2>/dev/null)

ALL_CFLAGS = $(WARN) $(CFLAGS) $(SAN) -fPIC -fvisibility=hidden \
             -Iinclude -Iframework -I$(BUILD) $(DEP_CFLAGS) -MMD -MP
LDFLAGS_ALL = $(SAN) $(LDFLAGS)

LIB_SRC  := $(wildcard framework/*.c)
LIB_OBJ  := $(LIB_SRC:framework/%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/migrations_gen.o
JOB_SRC  := $(wildcard jobs/*.c)
JOB_OBJ  := $(JOB_SRC:jobs/%.c=$(BUILD)/obj/jobs/%.o)
MIGRATIONS := $(sort $(wildcard migrations/sqlite/*.sql)) $(sort $(wildcard migrations/postgres/*.sql))
SONAME   := libratchet.so.0

.PHONY: all deps demo check asan bench clean
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
TEST_SRC  := $(wildcard tests/check_*.c) tests/harness.c
TEST_OBJ  := $(TEST_SRC:tests/%.c=$(BUILD)/obj/tests/%.o)
TESTJOB_OBJ := $(BUILD)/obj/tests/testjobs.o $(filter-out $(BUILD)/obj/jobs/main.o,$(JOB_OBJ))

$(BUILD)/obj/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -Ijobs -Itests -c $< -o $@

$(BUILD)/ratchet-test: $(TESTJOB_OBJ) $(BUILD)/libratchet.a
	$(CC) -o $@ $(TESTJOB_OBJ) $(BUILD)/libratchet.a $(LDFLAGS_ALL) $(DEP_LIBS)

$(BUILD)/check_ratchet: $(TEST_OBJ) $(BUILD)/libratchet.a
	$(CC) -o $@ $(TEST_OBJ) $(BUILD)/libratchet.a $(LDFLAGS_ALL) $(CHECK_LIBS) $(DEP_LIBS)

check: all $(BUILD)/ratchet-test $(BUILD)/check_ratchet
	CC="$(CC)" SAN="$(SAN)" tests/readme-example.sh $(BUILD)
	RATCHET_BIN=$(abspath $(BUILD)/ratchet) RATCHET_TEST_BIN=$(abspath $(BUILD)/ratchet-test) \
	  tests/run-tests.sh $(abspath $(BUILD)/check_ratchet)

asan:
	$(MAKE) BUILD=build/asan CC=clang CFLAGS="-O1 -g" \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" check

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
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LDFLAGS_ALL) $(DEP_LIBS)

bench: all $(BENCH_BINS)
	tests/bench/run-bench.sh $(BUILD)/bench/bench $(BUILD)/ratchet \
	  $(BUILD)/bench/baseline_sqlite $(BUILD)/bench/baseline_pg

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
