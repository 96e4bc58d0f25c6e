# rtool: `make` builds the static binary and runs `rtool doctor`; `make test` runs everything.

TARGET      := x86_64-unknown-linux-musl
BIN         := target/$(TARGET)/release/rtool
PREFIX      ?= /usr/local
DESTDIR     ?=
CARGO       ?= cargo
SIZE_BUDGET := 4194304

.PHONY: all static toolchain test test-deps lint unit install install-files size bench demo fuzz clean

# doctor exits 1 when it finds a FAIL: the report is the job, so only other codes fail make.
all: static
	$(BIN) doctor || [ $$? -eq 1 ]

# Adds the musl target and a musl C compiler when missing (set RTOOL_NO_INSTALL=1 to forbid).
toolchain:
	@scripts/toolchain.sh $(TARGET)

static: toolchain
	$(CARGO) build --locked --release --target $(TARGET)
	@echo "static binary: $(BIN)"

test-deps: toolchain
	@scripts/test-deps.sh

lint:
	scripts/layers.sh
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

# The integration tests run the static release binary, the one that ships. tests/fuzz_corpus.rs
# runs every fuzz target once on each of its seeds and regressions (fuzz/), on stable.
test: test-deps static lint
	RTOOL_BIN=$(CURDIR)/$(BIN) $(CARGO) test --locked

# The incident's rescue on a real ZFS pool in the test VM (tests/zfs_vm.rs), each command and
# its output as they appear on the console; the transcript stays in demo-transcript.txt.
demo: test-deps static
	RTOOL_BIN=$(CURDIR)/$(BIN) RTOOL_DEMO_TRANSCRIPT=$(CURDIR)/demo-transcript.txt \
		$(CARGO) test --locked --test zfs_vm -- --test-threads=1 chroot_imports_with_altroot
	@cat demo-transcript.txt

# Every fuzz target for FUZZ_SECONDS each, one at a time (nightly; cargo-fuzz is installed when
# missing): executions and crashes per target (fuzz/README.md).
FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run.sh

# The binary, its applet links (chroot, modprobe and rmmod only with RTOOL_LINK_ALL=1, as they
# would shadow the system's own), the man page and the bash, zsh and fish completions.
install: static install-files

install-files:
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/rtool
	$(DESTDIR)$(PREFIX)/bin/rtool --install -s $(if $(RTOOL_LINK_ALL),--all) $(DESTDIR)$(PREFIX)/bin
	@set -e; share=$(DESTDIR)$(PREFIX)/share; \
	for f in man:man/man1/rtool.1 bash:bash-completion/completions/rtool \
		zsh:zsh/site-functions/_rtool fish:fish/vendor_completions.d/rtool.fish; do \
		dest=$$share/$${f#*:}; install -d $$(dirname $$dest); \
		$(BIN) --generate $${f%%:*} > $$dest.new && mv $$dest.new $$dest; echo "  $$dest"; \
	done

size: static
	@scripts/size.sh $(BIN) $(SIZE_BUDGET)

bench: test-deps static
	@scripts/bench.sh $(CURDIR)/$(BIN)

clean:
	$(CARGO) clean
