#!/bin/sh
# The static binary's linker: the C compiler driver, as Rust uses by default, with LLVM's lld
# from the Rust toolchain when it has one, for identical code folding (--icf=all folds the many
# identical functions generic code leaves: about 50 KB). Without it, GNU ld links as before.
host=$(rustc -vV 2>/dev/null | sed -n 's/^host: //p')
gcc_ld="$(rustc --print sysroot 2>/dev/null)/lib/rustlib/$host/bin/gcc-ld"
if [ -n "$host" ] && [ -x "$gcc_ld/ld.lld" ]; then
    exec cc -fuse-ld=lld -B"$gcc_ld" -Wl,--icf=all "$@"
fi
exec cc "$@"
