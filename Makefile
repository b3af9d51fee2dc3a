# Makefile - build, test and install pgsched (GNU make).
#
#   make / make examples   build/pgsched-cron and every other examples/*.c into build/<name>
#   make demo              two scheduler nodes on a throwaway PostgreSQL, or on the in-memory
#                          store where there is no server (see README.md)
#   make test              everything below, with one summary ending "N passed, N failed"
#   make check             the fast loop: the test binaries on the in-memory store only (no
#                          PostgreSQL, no sanitizers), about 15 s once built
#   make unit              the test binaries and tests/test_*.sh against a throwaway cluster
#   make asan / tsan       the test binaries under clang's ASan+UBSan / TSan
#   make fuzz              each tests/fuzz/fuzz_*.c for FUZZ_SECONDS (default 60)
#   make bench             the benchmarks of tests/bench/ on a throwaway PostgreSQL, ending with
#                          one summary table (tests/bench/run.sh; BENCH_QUICK=1 for a short run)
#   make cluster-test      node processes on a throwaway PostgreSQL, killed, frozen, cut off,
#                          restarted, skewed, stopped and cancelled, checked against what they
#                          recorded; valgrind memcheck of the demo and of a node (CI runs it)
#   make install           pgsched.h, pgsched.pc, pgsched-cron and pgschedctl (whose --help is
#                          its manual) under $(DESTDIR)$(PREFIX)
#   make clean
#
# A PostgreSQL server for the tests comes from tests/pgcluster.sh unless PGSCHED_TEST_DSN is
# set (PGSCHED_DSN for the demo); tests/deps.sh installs what is missing (as root).

SHELL := /bin/bash
.DELETE_ON_ERROR:
.SUFFIXES:

BUILD ?= build
PREFIX ?= /usr/local
INCLUDEDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
PKGCONFIGDIR ?= $(PREFIX)/lib/pkgconfig
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_SECONDS ?= 60

PG_INCLUDEDIR := $(or $(shell pg_config --includedir 2>/dev/null),/usr/include/postgresql)
WARN := -std=c99 -Wall -Wextra -Wpedantic -Werror
CFLAGS ?= $(WARN) -g -O2
CPPFLAGS += -I. -I$(PG_INCLUDEDIR)
LDLIBS := -lpq -lpthread
CMOCKA_LIBS := -lcmocka

# The sanitizer and fuzzer builds use clang (SAN_CC=gcc works too, except for fuzz).
SAN_CC ?= clang
FUZZ_CC ?= clang
ASAN_CFLAGS ?= $(WARN) -fsanitize=address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer -g -O1
TSAN_CFLAGS ?= $(WARN) -fsanitize=thread -fno-omit-frame-pointer -g -O1
FUZZ_CFLAGS ?= $(WARN) -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer -g -O1
BENCH_CFLAGS ?= $(WARN) -g -O2

# Everything is rebuilt when the header or a piece of it changes. src/ is where the header's
# sections live while they are written; the wildcard is empty once they are inlined.
HEADERS := pgsched.h $(wildcard src/*.h)
TEST_HEADERS := $(HEADERS) $(wildcard tests/*.h tests/data/*.h tests/engine/*.inc tests/store/*.inc)

EXAMPLES := $(patsubst examples/%.c,$(BUILD)/%,$(wildcard examples/*.c))
TEST_NAMES := $(patsubst tests/%.c,%,$(wildcard tests/test_*.c))
TEST_SCRIPTS := $(notdir $(wildcard tests/test_*.sh))
TESTS := $(addprefix $(BUILD)/,$(TEST_NAMES))
ASAN_TESTS := $(addprefix $(BUILD)/asan/,$(TEST_NAMES))
TSAN_TESTS := $(addprefix $(BUILD)/tsan/,$(TEST_NAMES))
FUZZERS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
BENCHES := $(patsubst tests/bench/%.c,$(BUILD)/bench/%,$(wildcard tests/bench/*.c))
RESULTS := $(BUILD)/test-results

.PHONY: all examples tests check unit asan asan-build tsan tsan-build fuzz fuzz-build bench \
	bench-build demo test install clean cluster-test

all: examples
examples: $(EXAMPLES)
tests: $(TESTS)

# `rm -f $@` first: when a compile fails, no stale binary from an older build is left to run.
$(EXAMPLES): $(BUILD)/%: examples/%.c $(HEADERS)
	@mkdir -p $(@D)
	@rm -f $@
	$(CC) $(CPPFLAGS) $(CFLAGS) $< -o $@ $(LDLIBS)

$(TESTS): $(BUILD)/%: tests/%.c $(TEST_HEADERS)
	@mkdir -p $(@D)
	@rm -f $@
	$(CC) $(CPPFLAGS) $(CFLAGS) $< -o $@ $(CMOCKA_LIBS) $(LDLIBS)

# The harness runs examples/custom_store.c as a third store (CI: make unit, asan, tsan).
$(BUILD)/test_custom_store $(BUILD)/asan/test_custom_store $(BUILD)/tsan/test_custom_store: \
	examples/custom_store.c

$(ASAN_TESTS): $(BUILD)/asan/%: tests/%.c $(TEST_HEADERS)
	@mkdir -p $(@D)
	@rm -f $@
	$(SAN_CC) $(CPPFLAGS) $(ASAN_CFLAGS) $< -o $@ $(CMOCKA_LIBS) $(LDLIBS)

$(TSAN_TESTS): $(BUILD)/tsan/%: tests/%.c $(TEST_HEADERS)
	@mkdir -p $(@D)
	@rm -f $@
	$(SAN_CC) $(CPPFLAGS) $(TSAN_CFLAGS) $< -o $@ $(CMOCKA_LIBS) $(LDLIBS)

$(FUZZERS): $(BUILD)/fuzz/%: tests/fuzz/%.c $(TEST_HEADERS)
	@mkdir -p $(@D)
	@rm -f $@
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) $< -o $@ $(LDLIBS)

$(BENCHES): $(BUILD)/bench/%: tests/bench/%.c $(HEADERS)
	@mkdir -p $(@D)
	@rm -f $@
	$(CC) $(CPPFLAGS) $(BENCH_CFLAGS) $< -o $@ $(LDLIBS)

# The names tell run_tests.sh what must be there: a test that failed to build counts as failed.
# The shell tests run the examples (test_examples.sh, test_cli.sh, test_pgschedctl.sh, ...).
unit: tests examples
	bash tests/run_tests.sh $(BUILD) $(TEST_NAMES) $(TEST_SCRIPTS)

# test_pg_plans is all PostgreSQL: nothing of it runs without a server.
CHECK_NAMES := $(filter-out test_pg_plans,$(TEST_NAMES))
check: $(addprefix $(BUILD)/,$(CHECK_NAMES))
	PGSCHED_TEST_SKIP_PG=1 bash tests/run_tests.sh --no-scripts $(BUILD) $(CHECK_NAMES)

asan-build: $(ASAN_TESTS)
asan: asan-build
	bash tests/run_tests.sh --no-scripts $(BUILD)/asan $(TEST_NAMES)

tsan-build: $(TSAN_TESTS)
tsan: tsan-build
	bash tests/run_tests.sh --no-scripts $(BUILD)/tsan $(TEST_NAMES)

# --- make test ---------------------------------------------------------------------------------
# Every part runs even when an earlier one failed, so one run shows everything that is broken.
# run_part NAME COMMAND...: shows the part's output and keeps it in $(RESULTS)/NAME.log, and
# records its last "N passed, N failed" line (a part without one counts as one test, passed
# when it exits 0), its seconds and its exit status in $(RESULTS)/NAME.
RUN_PART = run_part() { \
	local name=$$1 log=$(RESULTS)/$$1.log t0=$$SECONDS rc line; shift; \
	echo "======== $$name: $$*"; \
	"$$@" 2>&1 | tee "$$log"; rc=$${PIPESTATUS[0]}; \
	line=$$(grep -oE '[0-9]+ passed, [0-9]+ failed' "$$log" | tail -n 1); \
	if [ -z "$$line" ]; then \
		if [ $$rc = 0 ]; then line="1 passed, 0 failed"; else line="0 passed, 1 failed"; fi; \
	elif [ $$rc != 0 ] && [ "$${line\#*, }" = "0 failed" ]; then \
		line="$${line%%,*}, 1 failed"; \
	fi; \
	echo "$$line|$$((SECONDS - t0))|$$rc" >"$(RESULTS)/$$name"; \
	}; run_part

TEST_PARTS := build compile_check unit asan tsan

test:
	@bash tests/deps.sh test
	@rm -rf $(RESULTS) && mkdir -p $(RESULTS)
	@$(RUN_PART) build $(MAKE) --no-print-directory -k -j$(JOBS) tests examples
	@$(RUN_PART) compile_check bash tests/compile_check.sh
	@$(RUN_PART) unit bash tests/run_tests.sh $(BUILD) $(TEST_NAMES) $(TEST_SCRIPTS)
	@$(RUN_PART) asan $(MAKE) --no-print-directory -j$(JOBS) asan
	@$(RUN_PART) tsan $(MAKE) --no-print-directory -j$(JOBS) tsan
	@echo; echo "======== make test: summary"; \
	p=0; f=0; \
	for part in $(TEST_PARTS); do \
		IFS='|' read -r line secs rc <"$(RESULTS)/$$part" || { line="0 passed, 1 failed"; secs=0; rc=?; }; \
		n=$${line%% passed*}; m=$${line#*passed, }; m=$${m%% failed*}; \
		p=$$((p + n)); f=$$((f + m)); \
		printf '%-14s %-26s %4ss%s\n' "$$part" "$$line" "$$secs" "$$([ "$$rc" = 0 ] || echo "  (exit $$rc)")"; \
	done; \
	echo "TOTAL: $$p passed, $$f failed"; \
	[ $$f = 0 ]

# --- cluster-test --------------------------------------------------------------------------------
# tests/cluster/run.sh: the scenarios and invariants are described at its top. CLUSTER_SCENARIOS
# picks some of them (default: all).
CLUSTER_NODE := $(BUILD)/cluster_node
CLUSTER_SCENARIOS ?=

$(CLUSTER_NODE): tests/cluster/node.c $(HEADERS)
	@mkdir -p $(@D)
	@rm -f $@
	$(CC) $(CPPFLAGS) $(CFLAGS) $< -o $@ $(LDLIBS)

cluster-test:
	@bash tests/deps.sh cluster
	@$(MAKE) --no-print-directory $(CLUSTER_NODE) $(BUILD)/demo
	CLUSTER_NODE=$(CLUSTER_NODE) bash tests/cluster/run.sh $(CLUSTER_SCENARIOS)

# --- fuzz, bench, demo ---------------------------------------------------------------------------
fuzz-build: $(FUZZERS)

# Each fuzzer starts from a scratch copy of its committed corpus (tests/fuzz/corpus_<name>),
# so a run never grows the committed one; crashes land in $(BUILD)/fuzz/artifacts/.
fuzz:
	@bash tests/deps.sh fuzz
	@$(MAKE) --no-print-directory -j$(JOBS) fuzz-build
	@set -u; fail=0; ran=0; \
	mkdir -p $(BUILD)/fuzz/artifacts; \
	for fz in $(FUZZERS); do \
		name=$${fz##*/}; corpus=tests/fuzz/corpus_$${name#fuzz_}; ran=$$((ran + 1)); \
		scratch=$$(mktemp -d); trap 'rm -rf "$$scratch"' EXIT; \
		[ -d "$$corpus" ] && cp -R "$$corpus/." "$$scratch/"; \
		dict=(); [ -f tests/fuzz/$$name.dict ] && dict=(-dict=tests/fuzz/$$name.dict); \
		echo "== $$name: $(FUZZ_SECONDS)s from $$corpus ($$(ls -A "$$scratch" | wc -l) inputs)"; \
		if $$fz -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
			-artifact_prefix=$(BUILD)/fuzz/artifacts/$$name- "$${dict[@]}" "$$scratch"; then \
			echo "-- $$name: ok"; \
		else \
			echo "-- $$name: FAILED (see $(BUILD)/fuzz/artifacts/)"; fail=$$((fail + 1)); \
		fi; \
		rm -rf "$$scratch"; \
	done; \
	[ $$ran -gt 0 ] || { echo "no fuzz targets (tests/fuzz/fuzz_*.c)"; fail=1; }; \
	echo "$$((ran - fail)) passed, $$fail failed"; \
	[ $$fail = 0 ]

bench-build: $(BENCHES)

# tests/bench/run.sh starts its own throwaway cluster (unless PGSCHED_TEST_DSN is set), runs
# every figure with fsync off and on, and ends with one summary table. BENCH_QUICK=1: a short
# run; BENCH_PEER=FILE: the peer's figures from the same sitting (see tests/bench/run.sh).
bench:
	@bash tests/deps.sh bench
	@$(MAKE) --no-print-directory -j$(JOBS) bench-build
	@bash tests/bench/run.sh $(BUILD)

# Without PGSCHED_DSN the demo gets a throwaway cluster; when there is no server to start one
# with (deps.sh could not install it) or it does not start, build/demo runs without PGSCHED_DSN
# and says that it uses the in-memory store. (Without examples/demo.c: a pgsched-cron preview.)
demo:
	@bash tests/deps.sh demo
	@if [ -f examples/demo.c ]; then $(MAKE) --no-print-directory $(BUILD)/demo; \
	elif [ -f examples/pgsched-cron.c ]; then $(MAKE) --no-print-directory $(BUILD)/pgsched-cron; fi
	@set -u; \
	if [ -x $(BUILD)/demo ] && [ -f examples/demo.c ]; then \
		if [ -z "$${PGSCHED_DSN:-}" ]; then \
			if out=$$(bash tests/pgcluster.sh start); then \
				eval "$$out"; \
				trap 'bash tests/pgcluster.sh stop "$${PGSCHED_CLUSTER_DIR:-}"' EXIT; \
				trap 'exit 130' INT TERM; \
			else \
				echo "demo: no PostgreSQL cluster could be started (see above); running without one"; \
				unset PGSCHED_DSN; \
			fi; \
		fi; \
		$(BUILD)/demo; \
	elif [ -x $(BUILD)/pgsched-cron ]; then \
		for e in '*/15 * * * *' '0 9 * * MON-FRI' 'CRON_TZ=America/New_York 30 1 * * *' \
			'0 0 L * *' '@every 90s'; do \
			echo "\$$ $(BUILD)/pgsched-cron -n 3 '$$e'"; $(BUILD)/pgsched-cron -n 3 "$$e" || exit 1; \
		done; \
	else \
		echo "demo: neither examples/demo.c nor examples/pgsched-cron.c exists yet"; exit 1; \
	fi

# --- install -------------------------------------------------------------------------------------
VERSION = $(shell sed -n 's/^\#define PGSCHED_VERSION_STRING "\(.*\)"/\1/p' pgsched.h)
CRON_TOOL := $(filter $(BUILD)/pgsched-cron,$(EXAMPLES))
CTL_TOOL := $(filter $(BUILD)/pgschedctl,$(EXAMPLES))

# While the header's sections still live in src/, an installed pgsched.h could not compile its
# implementation: refuse rather than install a header that only half works.
install: pgsched.pc.in $(CRON_TOOL) $(CTL_TOOL)
	@if grep -q '^[[:space:]]*#[[:space:]]*include "src/' pgsched.h; then \
		echo "make install: pgsched.h still includes src/*.h; inline them before installing" >&2; \
		exit 1; \
	fi
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 644 pgsched.h $(DESTDIR)$(INCLUDEDIR)/pgsched.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' \
		-e 's|@VERSION@|$(VERSION)|g' pgsched.pc.in >$(DESTDIR)$(PKGCONFIGDIR)/pgsched.pc
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/pgsched.pc
ifneq ($(CRON_TOOL),)
	install -d $(DESTDIR)$(BINDIR)
	install -m 755 $(CRON_TOOL) $(DESTDIR)$(BINDIR)/pgsched-cron
endif
ifneq ($(CTL_TOOL),)
	install -d $(DESTDIR)$(BINDIR)
	install -m 755 $(CTL_TOOL) $(DESTDIR)$(BINDIR)/pgschedctl
endif

clean:
	rm -rf $(BUILD)
