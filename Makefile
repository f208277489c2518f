# libtopic: a plain Makefile.  `make` builds lib/libtopic.a and lib/libtopic.so,
# `make check` builds and runs every test, `make demo` runs the quick start.
# V=1 shows the full commands.

VERSION_MAJOR := $(shell sed -n 's/^\#define TOPIC_VERSION_MAJOR  *\([0-9]*\).*/\1/p' include/topic.h)
VERSION_MINOR := $(shell sed -n 's/^\#define TOPIC_VERSION_MINOR  *\([0-9]*\).*/\1/p' include/topic.h)
VERSION_PATCH := $(shell sed -n 's/^\#define TOPIC_VERSION_PATCH  *\([0-9]*\).*/\1/p' include/topic.h)
VERSION       := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)

PREFIX     ?= /usr/local
prefix     ?= $(PREFIX)
exec_prefix ?= $(prefix)
libdir     ?= $(exec_prefix)/lib
includedir ?= $(prefix)/include
bindir     ?= $(exec_prefix)/bin
mandir     ?= $(prefix)/share/man
pkgconfigdir ?= $(libdir)/pkgconfig

CC      ?= cc
CXX     ?= c++
PKG_CONFIG ?= pkg-config
CFLAGS  ?= -O2 -g
WARNINGS := -Wall -Wextra -Wshadow -Wcast-align -Wstrict-prototypes -Wundef \
            -Wpointer-arith -Wmissing-prototypes
# Flags the build needs whatever the user passes in CFLAGS.
# -fno-semantic-interposition lets the library's exported functions call one
# another directly (topic_cursor_next calls topic_start_offset for every
# record), not through the shared library's PLT.
TOPIC_CFLAGS := -std=c11 -D_GNU_SOURCE -fPIC -fvisibility=hidden -fno-semantic-interposition -Iinclude -pthread \
                $(WARNINGS) $(shell $(PKG_CONFIG) --cflags libxxhash liblz4)
DEP_LIBS := $(shell $(PKG_CONFIG) --libs libxxhash liblz4) -pthread
CMOCKA_CFLAGS := $(shell $(PKG_CONFIG) --cflags cmocka 2>/dev/null)
CMOCKA_LIBS   := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null || echo -lcmocka)

ifeq ($(V),1)
Q :=
else
Q := @
endif

# B is the build directory: "." for the normal build, build/asan and
# build/tsan for the sanitizer builds, so that they never mix objects.
B ?= .
LIB_SRCS := $(sort $(wildcard lib/*.c))
LIB_OBJS := $(patsubst %.c,$(B)/%.o,$(LIB_SRCS))
LIB_HDRS := include/topic.h $(wildcard lib/*.h)
SONAME   := libtopic.so.$(VERSION_MAJOR)
STATIC   := $(B)/lib/libtopic.a
SHARED   := $(B)/lib/libtopic.so.$(VERSION)

TEST_SRCS := $(sort $(wildcard tests/test_*.c))
TEST_BINS := $(patsubst %.c,$(B)/%,$(TEST_SRCS))
TEST_HELPER_SRCS := $(wildcard tests/helpers/*.c)
TEST_HELPER_HDRS := $(wildcard tests/helpers/*.h)

.PHONY: all lib check check-unit check-man check-asan check-tsan demo bench clean \
        install uninstall examples torture tool check-python check-cli check-fuzz fuzz check-install coverage golden kafka check-kafka \
        bench-compare bench-micro check-valgrind

all: lib libtopic.pc tool

lib: $(STATIC) $(SHARED) $(B)/lib/libtopic.so

$(B)/lib/%.o: lib/%.c $(LIB_HDRS)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) $(TOPIC_CFLAGS) $(FILE_CFLAGS) -c $< -o $@

# xxh3_wide.c holds an AVX2 copy of XXH3 on x86-64, called only on CPUs that
# have AVX2 (see the file).
ifneq ($(filter x86_64-% i686-% i386-%,$(shell $(CC) -dumpmachine)),)
$(B)/lib/xxh3_wide.o: FILE_CFLAGS := -mavx2
endif

$(STATIC): $(LIB_OBJS)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(SHARED): $(LIB_OBJS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -shared -Wl,-soname,$(SONAME) -o $@ $^ $(DEP_LIBS)

$(B)/lib/libtopic.so: $(SHARED)
	$(Q)ln -sf libtopic.so.$(VERSION) $(B)/lib/$(SONAME)
	$(Q)ln -sf $(SONAME) $(B)/lib/libtopic.so

# libtopic.pc names exec_prefix, libdir and includedir relative to ${prefix}
# (libdir to ${exec_prefix}) where they lie under it, so that
# `pkg-config --define-variable=prefix=DIR` moves them all; one set outside
# the prefix is written as it is.
PC_EXEC_PREFIX = $(if $(filter $(prefix),$(exec_prefix)),$${prefix},$(patsubst $(prefix)/%,$${prefix}/%,$(exec_prefix)))
PC_LIBDIR = $(if $(filter $(exec_prefix)/%,$(libdir)),$(patsubst $(exec_prefix)/%,$${exec_prefix}/%,$(libdir)),$(patsubst $(prefix)/%,$${prefix}/%,$(libdir)))
PC_INCLUDEDIR = $(patsubst $(prefix)/%,$${prefix}/%,$(includedir))
PC_SED = sed -e 's|@PREFIX@|$(prefix)|' -e 's|@EXEC_PREFIX@|$(PC_EXEC_PREFIX)|' \
             -e 's|@LIBDIR@|$(PC_LIBDIR)|' -e 's|@INCLUDEDIR@|$(PC_INCLUDEDIR)|' \
             -e 's|@VERSION@|$(VERSION)|'

libtopic.pc: libtopic.pc.in include/topic.h Makefile
	$(Q)$(PC_SED) $< > $@

# Tests link the static library so that they may reach internal symbols.
$(B)/tests/%: tests/%.c $(STATIC) $(TEST_HELPER_SRCS) $(TEST_HELPER_HDRS)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) $(TOPIC_CFLAGS) $(CMOCKA_CFLAGS) -Ilib -Itests/helpers -o $@ $< \
	    $(TEST_HELPER_SRCS) $(STATIC) $(CMOCKA_LIBS) $(DEP_LIBS)

$(B)/examples/%: examples/%.c $(STATIC)
	@mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $(TOPIC_CFLAGS) -o $@ $< $(STATIC) $(DEP_LIBS)

EXAMPLES := $(patsubst %.c,$(B)/%,$(wildcard examples/*.c))
examples: $(EXAMPLES)

# The command-line tool, linked statically so that it runs from the tree.
TOOL_SRCS := $(sort $(wildcard tools/*.c))
$(B)/tools/topic: $(TOOL_SRCS) $(wildcard tools/*.h) $(STATIC)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) $(TOPIC_CFLAGS) -o $@ $(TOOL_SRCS) $(STATIC) $(DEP_LIBS)
tool: $(if $(TOOL_SRCS),$(B)/tools/topic)

# The Python binding's tests, with Debian's pytest (see doc/TOOLCHAIN notes:
# the python3 first on PATH may lack it).  Skipped where pytest is missing.
PYTHON ?= /usr/bin/python3
check-python: lib tool
	@if [ -d python/tests ] && $(PYTHON) -c 'import pytest' 2>/dev/null; then \
	    LIBTOPIC_PATH=$(CURDIR)/$(B)/lib/libtopic.so TOPIC_TOOL=$(CURDIR)/$(B)/tools/topic \
	    $(PYTHON) -m pytest -q python/tests; \
	else echo "python: pytest not installed (or no tests): skipped"; fi

demo: $(B)/examples/quickstart
	rm -rf /tmp/libtopic-demo
	$(B)/examples/quickstart /tmp/libtopic-demo

# Every test binary runs on its own; cmocka's summary goes to stderr, so it is
# folded into stdout for the logs.  A failing test fails the target, after
# all the others have run.  A binary that runs past TEST_TIMEOUT seconds (a
# hang: the slowest takes about 3 minutes under ThreadSanitizer) is killed
# and counts as failed, so CI reports it instead of running out its time.
TEST_TIMEOUT ?= 900
check-unit: $(TEST_BINS)
	@fail=0; for t in $(TEST_BINS); do \
	    echo "== $$t"; \
	    timeout -k 10 $(TEST_TIMEOUT) env $(TEST_ENV) ./$$t 2>&1 || \
	        { echo "FAILED: $$t (exit $$?; 124 means it ran past $(TEST_TIMEOUT) s)"; fail=1; }; \
	done; exit $$fail

check-man:
	@if command -v mandoc >/dev/null; then \
	    fail=0; for m in man/man*/*.[0-9]; do \
	        mandoc -T lint -W warning $$m || fail=1; \
	    done; [ $$fail = 0 ] && echo "man pages: mandoc lint clean"; exit $$fail; \
	else echo "mandoc not installed: man pages not linted"; fi

# The command-line tool, run as a user would (tests/cli).
check-cli: tool lib
	@if [ -f tests/cli/test_cli.sh ] && [ -x $(B)/tools/topic ]; then \
	    LIBTOPIC_PATH=$(CURDIR)/$(B)/lib/libtopic.so PYTHONPATH=$(CURDIR)/python \
	    sh tests/cli/test_cli.sh $(CURDIR)/$(B)/tools/topic; \
	else echo "cli: no tool or no tests: skipped"; fi

# Install into a temporary DESTDIR, build and run a program against it, check
# the exported symbols, uninstall.
check-install: all
	@sh tests/install/test_install.sh

# The Kafka bridge (kafka/), built and tested where librdkafka is installed;
# libtopic itself never depends on it.
HAVE_RDKAFKA := $(shell $(PKG_CONFIG) --exists rdkafka 2>/dev/null && echo yes)
kafka: lib
	$(MAKE) -C kafka
check-kafka: lib
	@if [ "$(HAVE_RDKAFKA)" = yes ] && [ -f kafka/Makefile ]; then $(MAKE) -C kafka check; \
	else echo "kafka: librdkafka not installed: skipped"; fi

check: check-unit check-fuzz check-man examples check-python check-cli check-install check-kafka

SAN_FLAGS := -O1 -g -fno-omit-frame-pointer
check-asan:
	$(MAKE) B=build/asan CFLAGS="$(SAN_FLAGS) -fsanitize=address,undefined -fno-sanitize-recover=all" \
	    LDFLAGS="-fsanitize=address,undefined" TEST_ENV="ASAN_OPTIONS=detect_leaks=1" check-unit
check-tsan:
	$(MAKE) B=build/tsan CFLAGS="$(SAN_FLAGS) -fsanitize=thread" LDFLAGS="-fsanitize=thread" \
	    TEST_ENV="TSAN_OPTIONS=halt_on_error=1" check-unit

# The unit tests under valgrind's memcheck: uninitialised reads and leaks
# that the sanitizer builds do not see, in an uninstrumented build as users
# link it.  Everything runs some 30 times slower there, so this runs the
# binaries that finish within the hour (test_edges takes the longest); the
# long loops of test_crash, test_corrupt, test_faults and test_queue, and
# the eight busy threads of test_threads (valgrind runs one thread at a
# time), run under ASan/UBSan and TSan in CI instead.  VALGRIND_TESTS picks
# others; TOPIC_TEST_SHARD=i/n in the environment runs every nth test of
# test_edges, so that n runs share it between cores.  A child that ends
# with a writer's mapping of its active segment (2 GiB, most of it past the
# end of the file) would spend many minutes in memcheck's leak check, which
# takes a SIGBUS on every word there: forked children unmap the topics'
# files first (tu_child_exit), and a child that dies as a killed writer,
# its threads still running, execs /bin/sh, which valgrind does not trace
# (tu_die).
VALGRIND ?= valgrind
VALGRIND_FLAGS := --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
                  --track-origins=yes --trace-children=yes --trace-children-skip=/bin/sh \
                  --child-silent-after-fork=no
VALGRIND_TESTS ?= test_format test_config test_golden test_edges test_api
check-valgrind:
	$(MAKE) B=build/valgrind CFLAGS="-O1 -g" \
	    TEST_BINS="$(VALGRIND_TESTS:%=build/valgrind/tests/%)" \
	    TEST_ENV="TOPIC_UNDER_VALGRIND=1 $(VALGRIND) $(VALGRIND_FLAGS)" TEST_TIMEOUT=7200 check-unit

# Line and branch coverage of lib/ by the unit tests and the corpus replays
# (Debian package gcovr); the report lands in build/coverage/.
coverage:
	$(MAKE) B=build/coverage CFLAGS="-O0 -g --coverage" LDFLAGS="--coverage" check-unit check-fuzz
	@mkdir -p build/coverage/report
	gcovr --root . --filter lib/ --object-directory build/coverage --print-summary \
	    --html-details build/coverage/report/index.html --txt build/coverage/report/coverage.txt \
	    build/coverage

# Remakes the golden damaged topics of tests/golden/cases.
golden: $(STATIC)
	@mkdir -p $(B)/tests/golden
	$(CC) $(CFLAGS) $(TOPIC_CFLAGS) -Ilib -o $(B)/tests/golden/make_golden tests/golden/make_golden.c \
	    $(STATIC) $(DEP_LIBS)
	./$(B)/tests/golden/make_golden

# The long versions of the crash tests.
torture: $(TEST_BINS)
	TOPIC_CRASH_ITERATIONS=5000 ./$(B)/tests/test_crash 2>&1
	TOPIC_FAULT_ITERATIONS=5 ./$(B)/tests/test_faults 2>&1
	TOPIC_QUEUE_RECORDS=3000000 ./$(B)/tests/test_queue 2>&1

# Fuzzing.  Each fuzz/fuzz_NAME.c is a libFuzzer target; `make check` replays
# its corpus (fuzz/corpus/NAME) through a plain driver, and `make fuzz` runs
# every target under libFuzzer for FUZZ_SECONDS each (clang required), adding
# what it finds to build/fuzz/corpus-NAME.
FUZZ_TARGETS := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_COMMON  := fuzz/util.c
$(B)/fuzz/replay_%: fuzz/fuzz_%.c fuzz/replay.c $(FUZZ_COMMON) fuzz/fuzz.h $(STATIC)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) $(TOPIC_CFLAGS) -Ilib -Ifuzz -o $@ $< fuzz/replay.c $(FUZZ_COMMON) \
	    $(STATIC) $(DEP_LIBS)

check-fuzz: $(FUZZ_TARGETS:%=$(B)/fuzz/replay_%)
	@for f in $(FUZZ_TARGETS); do \
	    ./$(B)/fuzz/replay_$$f fuzz/corpus/$$f || exit 1; \
	done

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_FLAGS   := -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=all
build/fuzz/fuzz_%: fuzz/fuzz_%.c $(FUZZ_COMMON) fuzz/fuzz.h $(LIB_SRCS) $(LIB_HDRS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) -std=c11 -D_GNU_SOURCE -Iinclude -Ilib -Ifuzz -pthread -o $@ $< \
	    $(FUZZ_COMMON) $(LIB_SRCS) $(DEP_LIBS)

fuzz: $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)
	@for f in $(FUZZ_TARGETS); do \
	    mkdir -p build/fuzz/corpus-$$f; \
	    echo "== fuzzing $$f for $(FUZZ_SECONDS) s"; \
	    ./build/fuzz/fuzz_$$f -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=4096 \
	        -artifact_prefix=build/fuzz/$$f- build/fuzz/corpus-$$f fuzz/corpus/$$f || exit 1; \
	done

BENCH_RUNS ?= 5
$(B)/bench/bench: bench/bench.c $(STATIC)
	@mkdir -p $(@D)
	$(Q)$(CC) -O2 -g $(TOPIC_CFLAGS) -o $@ $< $(STATIC) $(DEP_LIBS)

bench: $(B)/bench/bench
	./$(B)/bench/bench --runs $(BENCH_RUNS)

# The comparison with the libraries users would pick instead (SQLite, LMDB,
# RocksDB, LevelDB) and the google-benchmark harness of per-call latencies
# live in their own makefiles: they build only where those packages are.
bench-compare: $(STATIC)
	$(MAKE) -C bench/compare

BENCHMARK_LIBS := $(shell $(PKG_CONFIG) --libs benchmark 2>/dev/null || echo -lbenchmark)
$(B)/bench/micro: bench/micro.cc $(STATIC)
	@mkdir -p $(@D)
	$(Q)$(CXX) -O2 -g -std=c++17 -Wall -Wextra -Iinclude -o $@ $< $(STATIC) $(DEP_LIBS) \
	    $(BENCHMARK_LIBS) -pthread
bench-micro: $(B)/bench/micro
	./$(B)/bench/micro $(MICRO_ARGS)

# The .pc file is written from libtopic.pc.in here, with the prefix given to
# this command, whatever `make` was run with before.
# The Kafka bridge's pages are left to `make -C kafka install`, which
# installs them with the bridge's header, libraries and tool: installed from
# here they would describe files that are not there.
KAFKA_MANS := man/man1/topic-kafka.1 man/man3/topic_kafka.3
install: all
	install -d $(DESTDIR)$(libdir) $(DESTDIR)$(includedir) $(DESTDIR)$(pkgconfigdir) \
	           $(DESTDIR)$(mandir)/man1 $(DESTDIR)$(mandir)/man3 $(DESTDIR)$(mandir)/man5 \
	           $(DESTDIR)$(mandir)/man7 $(DESTDIR)$(bindir)
	if [ -x $(B)/tools/topic ]; then install -m 755 $(B)/tools/topic $(DESTDIR)$(bindir)/topic; fi
	install -m 644 include/topic.h $(DESTDIR)$(includedir)/topic.h
	install -m 644 $(STATIC) $(DESTDIR)$(libdir)/libtopic.a
	install -m 755 $(SHARED) $(DESTDIR)$(libdir)/libtopic.so.$(VERSION)
	ln -sf libtopic.so.$(VERSION) $(DESTDIR)$(libdir)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(libdir)/libtopic.so
	$(PC_SED) libtopic.pc.in > $(DESTDIR)$(pkgconfigdir)/libtopic.pc
	for s in 1 3 5 7; do for m in man/man$$s/*.$$s; do \
	    case " $(KAFKA_MANS) " in *" $$m "*) continue;; esac; \
	    [ -e "$$m" ] && install -m 644 $$m $(DESTDIR)$(mandir)/man$$s/ || true; done; done

uninstall:
	rm -f $(DESTDIR)$(includedir)/topic.h $(DESTDIR)$(libdir)/libtopic.a \
	      $(DESTDIR)$(libdir)/libtopic.so.$(VERSION) $(DESTDIR)$(libdir)/$(SONAME) \
	      $(DESTDIR)$(libdir)/libtopic.so $(DESTDIR)$(pkgconfigdir)/libtopic.pc
	rm -f $(DESTDIR)$(bindir)/topic
	for s in 1 3 5 7; do for m in man/man$$s/*.$$s; do \
	    case " $(KAFKA_MANS) " in *" $$m "*) continue;; esac; \
	    [ -e "$$m" ] && rm -f $(DESTDIR)$(mandir)/man$$s/$${m##*/} || true; done; done

clean:
	rm -rf lib/*.o lib/libtopic.a lib/libtopic.so* libtopic.pc $(TEST_BINS) $(EXAMPLES) \
	       bench/bench bench/micro build
