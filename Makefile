# raidtool — build, test, install.  See README.md.
PREFIX     ?= /usr/local
DESTDIR    ?=
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
# udev and systemd read only their own directories, whatever PREFIX is: ask
# them where (Debian 12: /lib/udev, /lib/systemd/system), as packages do.
UDEVDIR    ?= $(or $(shell pkg-config --variable=udevdir udev 2>/dev/null),/usr/lib/udev)
UDEVRULESDIR ?= $(UDEVDIR)/rules.d
SYSTEMDUNITDIR ?= $(or $(shell pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null),/usr/lib/systemd/system)

CC       ?= cc
CLANG    ?= clang
CFLAGS   ?= -O2 -g
PKGS     := blkid uuid popt json-c liburing libisal
# libfuse only for the test helper rt-faultyfs (raidtool speaks FUSE itself).
HELPER_PKGS := fuse3
WARNINGS := -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes \
            -Wmissing-prototypes -Wno-unused-parameter
ifeq ($(CI),true)
WARNINGS += -Werror
endif
ifneq ($(WERROR),)
WARNINGS += -Werror
endif

BUILD    ?= build
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread
ALL_CFLAGS = -std=gnu11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -Iinclude \
             $(WARNINGS) $(PKG_CFLAGS) $(CFLAGS)

# lib/ and its module directories (lib/engine/): object names must differ (ar).
LIB_SRC  := $(wildcard lib/*.c lib/*/*.c)
# ar keeps one member per file name: a second lib/**/x.c would silently
# replace the first x.o in libraidtool.a.
ifneq ($(words $(notdir $(LIB_SRC))),$(words $(sort $(notdir $(LIB_SRC)))))
$(error lib/: two source files have the same name; libraidtool.a would keep only one)
endif
CLI_SRC  := $(wildcard raidtool/*.c)
UT_SRC   := $(wildcard tests/unit/test_*.c)
HELPER_SRC := $(wildcard tests/helpers/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
HDRS     := $(wildcard include/raidtool/*.h lib/*.h lib/*/*.h raidtool/*.h)

# Unit tests run against a sanitizer build of the library.
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
SAN_LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj-san/%.o)
UT_BIN   := $(UT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
HELPER_BIN := $(HELPER_SRC:tests/helpers/%.c=$(BUILD)/tests/%)
FUZZ_BIN := $(BUILD)/fuzz/fuzz_sb_decode $(BUILD)/fuzz/fuzz_dirtylog_decode \
            $(BUILD)/fuzz/fuzz_thin_decode

.PHONY: all deps check unit-tests fuzz demo bench torture install uninstall clean lint

all: deps $(BUILD)/raidtool $(HELPER_BIN)

deps:
	@./scripts/install-deps

# Nothing compiles before the packages it needs are there, also under make -j.
$(LIB_OBJ) $(CLI_OBJ) $(SAN_LIB_OBJ) $(UT_BIN) $(HELPER_BIN) $(FUZZ_BIN): | deps

$(BUILD)/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/obj-san/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -c -o $@ $<

$(BUILD)/libraidtool.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libraidtool-san.a: $(SAN_LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/raidtool: $(CLI_OBJ) $(BUILD)/libraidtool.a
	$(CC) $(ALL_CFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libraidtool.a $(PKG_LIBS)

$(BUILD)/tests/test_%: tests/unit/test_%.c $(BUILD)/libraidtool-san.a $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -o $@ $< $(BUILD)/libraidtool-san.a \
		$(PKG_LIBS) $(shell pkg-config --libs cmocka)

# Helpers may use the library (rt-sbedit encodes superblocks with it).
$(BUILD)/tests/%: tests/helpers/%.c $(BUILD)/libraidtool.a $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(shell pkg-config --cflags $(HELPER_PKGS) 2>/dev/null) -o $@ $< \
		$(BUILD)/libraidtool.a $(PKG_LIBS) $(shell pkg-config --libs $(HELPER_PKGS) 2>/dev/null)

unit-tests: deps $(UT_BIN) $(HELPER_BIN)

# libFuzzer targets for the superblock and dirty-log decoders (pure
# modules, built with only what they need), with ASan and UBSan.
FUZZ_FLAGS = -std=gnu11 -D_GNU_SOURCE -Iinclude $(PKG_CFLAGS) -g -O1 \
             -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
$(BUILD)/fuzz/fuzz_sb_decode: tests/fuzz/fuzz_sb_decode.c lib/format.c lib/log.c \
		tests/fuzz/fuzz-check.h $(HDRS)
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_FLAGS) -o $@ $(filter %.c,$^) $(PKG_LIBS)

$(BUILD)/fuzz/fuzz_dirtylog_decode: tests/fuzz/fuzz_dirtylog_decode.c lib/dirtylog.c \
		lib/format.c lib/log.c tests/fuzz/fuzz-check.h $(HDRS)
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_FLAGS) -o $@ $(filter %.c,$^) $(PKG_LIBS)

$(BUILD)/fuzz/fuzz_thin_decode: tests/fuzz/fuzz_thin_decode.c lib/thin-format.c \
		lib/format.c lib/log.c tests/fuzz/fuzz-check.h $(HDRS)
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_FLAGS) -o $@ $(filter %.c,$^) $(PKG_LIBS)

fuzz: deps $(FUZZ_BIN)

check: all unit-tests fuzz
	@./tests/run-tests

demo: all
	@./tests/demo

bench: all
	@BACKING='$(BACKING)' ./tests/bench

# The torture run alone (two minutes of it are part of make check);
# make torture SECONDS=600 runs it longer, SEED=N replays a run.
torture: all
	@RAIDTOOL_TORTURE_SECONDS=$(or $(SECONDS),120) bats tests/bats/torture.bats

# shellcheck over the scripts; the modules' #include lines have no cycle
# and lib/ includes nothing of the CLI (scripts/check-deps); no near-copy of
# 10 lines or more in lib/ and raidtool/ (scripts/check-copies).
lint:
	shellcheck -x scripts/install-deps tests/run-tests tests/demo tests/bench .ci/run \
		completions/raidtool.bash tests/bats/*.bash tests/bats/*.bats
	./scripts/check-deps
	./scripts/check-copies

install: $(BUILD)/raidtool
	install -D -m 0755 $(BUILD)/raidtool $(DESTDIR)$(SBINDIR)/raidtool
	install -d $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(MANDIR)/man8
	install -m 0644 man/*.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 man/*.7 $(DESTDIR)$(MANDIR)/man7/
	install -m 0644 man/*.8 $(DESTDIR)$(MANDIR)/man8/
	install -D -m 0644 completions/raidtool.bash $(DESTDIR)$(BASHCOMPDIR)/raidtool
	install -d $(DESTDIR)$(UDEVRULESDIR) $(DESTDIR)$(SYSTEMDUNITDIR)
	sed 's|@SBINDIR@|$(SBINDIR)|g' udev/64-raidtool.rules > $(DESTDIR)$(UDEVRULESDIR)/64-raidtool.rules
	sed 's|@SBINDIR@|$(SBINDIR)|g' udev/raidtool@.service > $(DESTDIR)$(SYSTEMDUNITDIR)/raidtool@.service
	sed 's|@SBINDIR@|$(SBINDIR)|g' udev/raidtool-monitor.service > $(DESTDIR)$(SYSTEMDUNITDIR)/raidtool-monitor.service
	install -m 0644 udev/raidtool-last-resort@.timer $(DESTDIR)$(SYSTEMDUNITDIR)/
	chmod 0644 $(DESTDIR)$(UDEVRULESDIR)/64-raidtool.rules $(DESTDIR)$(SYSTEMDUNITDIR)/raidtool@.service \
		$(DESTDIR)$(SYSTEMDUNITDIR)/raidtool-monitor.service

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/raidtool $(DESTDIR)$(BASHCOMPDIR)/raidtool
	rm -f $(DESTDIR)$(MANDIR)/man5/raidtool-format.5 $(DESTDIR)$(MANDIR)/man8/raidtool.8
	rm -f $(DESTDIR)$(MANDIR)/man7/raidtool-control.7
	rm -f $(DESTDIR)$(UDEVRULESDIR)/64-raidtool.rules
	rm -f $(DESTDIR)$(SYSTEMDUNITDIR)/raidtool@.service $(DESTDIR)$(SYSTEMDUNITDIR)/raidtool-monitor.service
	rm -f $(DESTDIR)$(SYSTEMDUNITDIR)/raidtool-last-resort@.timer

clean:
	rm -rf $(BUILD)
