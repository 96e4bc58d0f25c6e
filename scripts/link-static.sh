#!/bin/sh
# The static binary's linker: the C compiler driver, as Rust uses by default, with LLVM's lld
# from the Rust toolchain when it has one, for identical code folding (--icf=all folds the many
# identical functions generic code leaves: about 50 KB). Without it, GNU ld links as before.
# Nothing unwinds (panic = "abort"), so the unwinder's index over the unwind tables,
# .eh_frame_hdr (about 57 KB), is left out: --no-eh-frame-hdr comes last, after the driver's
# own --eh-frame-hdr. Without the index nothing can read the tables either, so with lld they
# go too (.eh_frame, about 440 KB; no-unwind-tables.ld). A panic still prints its message and
# aborts, with an empty backtrace as before. GNU ld keeps them: crtbeginS.o refers to them.
host=$(rustc -vV 2>/dev/null | sed -n 's/^host: //p')
gcc_ld="$(rustc --print sysroot 2>/dev/null)/lib/rustlib/$host/bin/gcc-ld"
if [ -n "$host" ] && [ -x "$gcc_ld/ld.lld" ]; then
    exec cc -fuse-ld=lld -B"$gcc_ld" -Wl,--icf=all "$@" -Wl,--no-eh-frame-hdr \
        -Wl,-T,"$(dirname "$0")/no-unwind-tables.ld"
fi
exec cc "$@" -Wl,--no-eh-frame-hdr
