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
TOPIC_CFLAGS := -std=c11 -D_GNU_SOURCE -fPIC -fvisibility=hidden -Iinclude -pthread \
                $(WARNINGS) $(shell $(PKG_CONFIG) --cflags libxxhash liblz4)
DEP_LIBS := $(shell $(PKG_CONFIG) --libs libxxhash liblz4) -pthread
CMOCKA_CFLAGS := $(shell $(PKG_CONFIG) --cflags cmocka 2>/dev/null)
CMOCKA_LIBS   := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null || echo -lcmocka)

ifeq ($(V),1)
Q :=
else
Q := @
endif

LIB_SRCS := $(sort $(wildcard lib/*.c))
LIB_OBJS := $(LIB_SRCS:.c=.o)
LIB_HDRS := include/topic.h $(wildcard lib/*.h)
SONAME   := libtopic.so.$(VERSION_MAJOR)
STATIC   := lib/libtopic.a
SHARED   := lib/libtopic.so.$(VERSION)

TEST_SRCS := $(sort $(wildcard tests/test_*.c))
TEST_BINS := $(TEST_SRCS:.c=)
TEST_HELPER_SRCS := $(wildcard tests/helpers/*.c)

.PHONY: all lib check demo bench clean install uninstall examples

all: lib libtopic.pc

lib: $(STATIC) $(SHARED) lib/libtopic.so

lib/%.o: lib/%.c $(LIB_HDRS)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) $(TOPIC_CFLAGS) -c $< -o $@

$(STATIC): $(LIB_OBJS)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(SHARED): $(LIB_OBJS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -shared -Wl,-soname,$(SONAME) -o $@ $^ $(DEP_LIBS)

lib/libtopic.so: $(SHARED)
	$(Q)ln -sf libtopic.so.$(VERSION) lib/$(SONAME)
	$(Q)ln -sf $(SONAME) lib/libtopic.so

libtopic.pc: libtopic.pc.in include/topic.h
	$(Q)sed -e 's|@PREFIX@|$(prefix)|' -e 's|@LIBDIR@|$(libdir)|' \
	       -e 's|@INCLUDEDIR@|$(includedir)|' -e 's|@VERSION@|$(VERSION)|' $< > $@

# Tests link the static library so that they may reach internal symbols.
tests/%: tests/%.c $(STATIC) $(TEST_HELPER_SRCS) $(wildcard tests/helpers/*.h)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) $(TOPIC_CFLAGS) $(CMOCKA_CFLAGS) -Ilib -Itests/helpers -o $@ $< \
	    $(TEST_HELPER_SRCS) $(STATIC) $(CMOCKA_LIBS) $(DEP_LIBS)

examples/%: examples/%.c $(STATIC)
	$(Q)$(CC) $(CFLAGS) $(TOPIC_CFLAGS) -o $@ $< $(STATIC) $(DEP_LIBS)

EXAMPLES := $(patsubst %.c,%,$(wildcard examples/*.c))
examples: $(EXAMPLES)

demo: examples/quickstart
	rm -rf /tmp/libtopic-demo
	./examples/quickstart /tmp/libtopic-demo

# Every test binary runs on its own; cmocka's summary goes to stderr, so it is
# folded into stdout for the logs.  A failing test fails `make check`.
check: $(TEST_BINS)
	@fail=0; for t in $(TEST_BINS); do \
	    echo "== $$t"; \
	    ./$$t 2>&1 || fail=1; \
	done; \
	if [ -d man ] && command -v mandoc >/dev/null; then \
	    for m in man/man*/*.[0-9]; do \
	        mandoc -T lint -W warning $$m || fail=1; \
	    done; \
	fi; \
	exit $$fail

BENCH_RUNS ?= 5
bench/bench: bench/bench.c $(STATIC)
	$(Q)$(CC) -O2 -g $(TOPIC_CFLAGS) -o $@ $< $(STATIC) $(DEP_LIBS)

bench: bench/bench
	./bench/bench --runs $(BENCH_RUNS)

install: all
	install -d $(DESTDIR)$(libdir) $(DESTDIR)$(includedir) $(DESTDIR)$(pkgconfigdir) \
	           $(DESTDIR)$(mandir)/man3 $(DESTDIR)$(mandir)/man7
	install -m 644 include/topic.h $(DESTDIR)$(includedir)/topic.h
	install -m 644 $(STATIC) $(DESTDIR)$(libdir)/libtopic.a
	install -m 755 $(SHARED) $(DESTDIR)$(libdir)/libtopic.so.$(VERSION)
	ln -sf libtopic.so.$(VERSION) $(DESTDIR)$(libdir)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(libdir)/libtopic.so
	install -m 644 libtopic.pc $(DESTDIR)$(pkgconfigdir)/libtopic.pc
	for m in man/man3/*.3; do [ -e "$$m" ] && install -m 644 $$m $(DESTDIR)$(mandir)/man3/ || true; done
	for m in man/man7/*.7; do [ -e "$$m" ] && install -m 644 $$m $(DESTDIR)$(mandir)/man7/ || true; done

uninstall:
	rm -f $(DESTDIR)$(includedir)/topic.h $(DESTDIR)$(libdir)/libtopic.a \
	      $(DESTDIR)$(libdir)/libtopic.so.$(VERSION) $(DESTDIR)$(libdir)/$(SONAME) \
	      $(DESTDIR)$(libdir)/libtopic.so $(DESTDIR)$(pkgconfigdir)/libtopic.pc
	for m in man/man3/*.3; do rm -f $(DESTDIR)$(mandir)/man3/$${m##*/}; done
	for m in man/man7/*.7; do rm -f $(DESTDIR)$(mandir)/man7/$${m##*/}; done

clean:
	rm -f lib/*.o $(STATIC) lib/libtopic.so* libtopic.pc $(TEST_BINS) $(EXAMPLES) bench/bench
