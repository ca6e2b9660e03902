# Berth: a thin wrapper around Meson. See README.md.
#   make          build (build/)
#   make deps     install the Debian packages needed to build and test
#   make test     deps + build + sanitizer build + unit and integration tests
#   make demo     deps + build + install + start berthd + import busybox + run it
#   make install PREFIX=/usr/local
PREFIX ?= /usr/local
BUILD ?= build
ASAN_BUILD ?= build-asan
PYTHON ?= /usr/bin/python3

DEPS = meson ninja-build pkg-config gcc libc6-dev libjansson-dev \
       libarchive-dev zlib1g-dev libzstd-dev libcmocka-dev \
       busybox-static python3-pytest python3-docker docker.io clang-format curl \
       iproute2 util-linux procps hyperfine libseccomp-dev zstd xz-utils runc tmux \
       clang libclang-rt-14-dev

.PHONY: all build asan deps install test unit integration fuzz demo format format-check clean

all: build

$(BUILD)/build.ninja:
	meson setup $(BUILD) --prefix=$(abspath $(PREFIX))

build: $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug

asan: $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)

deps:
	@missing=$$(for p in $(DEPS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

install: build
	meson configure $(BUILD) --prefix=$(abspath $(PREFIX)) >/dev/null
	meson install -C $(BUILD) --quiet

unit: asan
	meson test -C $(ASAN_BUILD) --print-errorlogs

integration: build asan
	BERTH_BUILD=$(abspath $(ASAN_BUILD)) $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

test: deps
	$(MAKE) format-check
	$(MAKE) build asan
	$(MAKE) unit
	$(MAKE) fuzz
	$(MAKE) integration

# libFuzzer targets for the parsers of untrusted input (tests/fuzz), each run
# for FUZZ_SECONDS from its seed corpus (copied: the run adds to the copy).
FUZZ_SECONDS ?= 10
FUZZ_DIR = build-fuzz
FUZZ_CFLAGS = -g -O1 -std=c17 -D_GNU_SOURCE -Isrc -fsanitize=fuzzer,address,undefined \
              -fno-sanitize-recover=undefined
COMMON_SRC = src/common/util.c src/common/digest.c src/common/sha256.c src/common/jsonutil.c \
             src/common/jsonfast.c src/common/libarchive.c
FUZZ_SRC_ref = src/image/ref.c
FUZZ_SRC_filters =
FUZZ_SRC_template = src/cli/template_parse.c src/cli/template_exec.c src/cli/template_print.c
FUZZ_SRC_tarx = src/image/tarx.c
FUZZ_SRC_http = src/daemon/http_parse.c
FUZZ_SRC_json =
FUZZ_LIBS = -ljansson -ldl # libarchive: dlopened on first use
FUZZ_TARGETS = ref filters template tarx http json

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(COMMON_SRC) src/image/*.c src/cli/template*.c \
                    src/daemon/http_parse.[ch]
	@mkdir -p $(FUZZ_DIR)
	clang $(FUZZ_CFLAGS) -o $@ $< $(COMMON_SRC) $(FUZZ_SRC_$*) $(FUZZ_LIBS)

fuzz: $(addprefix $(FUZZ_DIR)/fuzz_,$(FUZZ_TARGETS))
	@for t in $(FUZZ_TARGETS); do \
		rm -rf $(FUZZ_DIR)/corpus-$$t && cp -r tests/fuzz/corpus/$$t $(FUZZ_DIR)/corpus-$$t && \
		echo "fuzz $$t for $(FUZZ_SECONDS)s" && \
		$(FUZZ_DIR)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
			-artifact_prefix=$(FUZZ_DIR)/$$t- \
			$(FUZZ_DIR)/corpus-$$t 2>$(FUZZ_DIR)/fuzz_$$t.log || \
			{ tail -40 $(FUZZ_DIR)/fuzz_$$t.log; exit 1; }; \
	done; echo "fuzz: $(words $(FUZZ_TARGETS)) targets ran without a crash"

demo: deps build
	$(MAKE) install
	PREFIX=$(abspath $(PREFIX)) sh scripts/demo.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	@bad=$$(for f in $$(git ls-files '*.c' '*.h'); do \
		clang-format --dry-run -Werror "$$f" >/dev/null 2>&1 || echo "$$f"; done); \
	if [ -n "$$bad" ]; then echo "not formatted (run make format):"; echo "$$bad"; exit 1; fi

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
