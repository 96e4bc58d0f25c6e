#!/bin/sh
# Makes sure the static (musl) build can run: the rustup target, and a musl C compiler for the
# crates that compile C (ring, zstd). Installs what is missing when allowed (root with apt-get,
# RTOOL_NO_INSTALL unset); otherwise says what to install.
set -eu
target=${1:-x86_64-unknown-linux-musl}

may_install() { [ -z "${RTOOL_NO_INSTALL:-}" ]; }

if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    if command -v rustup >/dev/null 2>&1 && may_install; then
        rustup target add "$target"
    else
        echo "toolchain: the Rust target $target is missing: rustup target add $target" >&2
        exit 1
    fi
fi

if ! command -v musl-gcc >/dev/null 2>&1 && ! command -v x86_64-linux-musl-gcc >/dev/null 2>&1 \
    && [ -z "${CC_x86_64_unknown_linux_musl:-}" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && may_install; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq musl-tools >/dev/null
    else
        echo "toolchain: no musl C compiler: install musl-tools (Debian/Ubuntu) or musl (Arch)," >&2
        echo "           or set CC_x86_64_unknown_linux_musl=gcc" >&2
        exit 1
    fi
fi
