#!/usr/bin/env bash
# Checks the layering of rtool's domains (ARCHITECTURE.md, "Layers").
#
# Every `crate::NAME…` and `rtool::NAME…` path in src/**.rs and applets/*.rs (grouped
# `use crate::{a, b::c}` included, comments and strings left out) is an edge from the file's
# top-level domain to NAME; names the crate root re-exports (`rtool::Ctx`, `rtool::Error`) count
# for the module they come from, as src/lib.rs says. A `#[path]`, `include!` or `mod` that
# reaches into applets/ is an edge to `applets`. The check fails, naming file:line and the
# edge, when the table below does not allow an edge, and when the domains import each other
# in a circle, whatever the table says.
#
# Usage: scripts/layers.sh [DIR]    DIR: a checkout (default: the one holding this script)
set -euo pipefail

dir=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$dir"
if [ ! -d src ] || [ ! -d applets ]; then
    echo "layers: $dir has no src/ and applets/" >&2
    exit 2
fi

# The layering: each domain and what it may import (its own files always). `@NAME = …` names
# a group; `*` is every domain of the library. No entry allows `applets`: src/ never imports
# them. Keep this table and ARCHITECTURE.md's equal.
TABLE='
@helpers     = error paths units text json hash decompress progress report

# helpers: small modules that know no domain
error:
paths:
units:
text:
json:
hash:        error
decompress:  error
progress:    units
report:      json text
# formats: from bytes and files alone
pkg:         @helpers
# the context an applet runs in
ctx:         error paths
# the running system, archives, signatures, the network
sys:         @helpers ctx
archive:     @helpers ctx pkg sys
sig:         @helpers ctx pkg sys archive
net:         @helpers ctx pkg sys archive sig
# what applets ask for
ssh:         @helpers ctx pkg sys archive sig net
kernel:      @helpers ctx pkg sys archive sig net
transaction: @helpers ctx pkg sys archive sig net
stick:       @helpers ctx pkg sys archive sig net kernel
# dispatch, and the crate roots
applet:      error ctx
install:     @helpers ctx sys
manual:      @helpers applet
cli:         @helpers ctx applet install manual
lib:         *
applets:     *
main:        cli applet
'

domains=$(
    for f in src/*.rs; do basename "$f" .rs; done
    for d in src/*/; do basename "$d"; done
    echo applets
)
domains=$(printf '%s\n' "$domains" | LC_ALL=C sort -u)
mapfile -t files < <(find src applets -name '*.rs' -type f | LC_ALL=C sort)

prog=$(
    cat <<'AWK'
function fail(msg) { print msg; problems++ }

function domain_of(path,    p, n) {
    n = split(path, p, "/")
    if (p[1] == "applets") return "applets"
    sub(/\.rs$/, "", p[2])
    return p[2]
}

function edge(to, line) {
    if (to == "self" || to == "super" || to == "" || to == from) return
    ne++
    e_from[ne] = from; e_to[ne] = to; e_at[ne] = FILENAME ":" line
}

# The line with string, character and comment contents blanked, so that only code is searched;
# `instr`, `rawh` and `bdepth` carry a string or block comment over to the next line.
function code_of(s,    out, i, n, c, t, k, h) {
    out = ""; n = length(s); i = 1
    while (i <= n) {
        c = substr(s, i, 1)
        if (bdepth > 0) {
            t = substr(s, i, 2)
            if (t == "*/") { bdepth--; out = out "  "; i += 2; continue }
            if (t == "/*") { bdepth++; out = out "  "; i += 2; continue }
            out = out " "; i++; continue
        }
        if (instr == 1) {
            if (c == "\\") { out = out "  "; i += 2; continue }
            if (c == "\"") { instr = 0; out = out c; i++; continue }
            out = out " "; i++; continue
        }
        if (instr == 2) {
            h = ""
            for (k = 0; k < rawh; k++) h = h "#"
            if (c == "\"" && substr(s, i + 1, rawh) == h) {
                instr = 0; out = out c; i += 1 + rawh; continue
            }
            out = out " "; i++; continue
        }
        t = substr(s, i, 2)
        if (t == "//") break
        if (t == "/*") { bdepth = 1; out = out "  "; i += 2; continue }
        if (c == "\"") { instr = 1; out = out c; i++; continue }
        if ((c == "r" || c == "b") && substr(out, length(out), 1) !~ /[A-Za-z0-9_]/ &&
            match(substr(s, i), /^b?r#*"/)) {
            rawh = RLENGTH - 2 - (c == "b")
            instr = 2; out = out "\""; i += RLENGTH; continue
        }
        if (c == "'") {
            t = substr(s, i)
            if (match(t, /^'\\u[{][0-9a-fA-F]+[}]'/) || match(t, /^'\\.'/) || match(t, /^'[^'\\]'/)) {
                for (k = 0; k < RLENGTH; k++) out = out " "
                i += RLENGTH; continue
            }
        }
        out = out c; i++
    }
    return out
}

# Reads a `{a, b::c, d::{e}}` group from `s` (already inside it): the first name of each item
# at depth 1 is an edge. Returns where the group closed, 0 when it goes on to the next line.
function group(s, line,    i, n, c) {
    n = length(s); i = 1
    while (i <= n) {
        c = substr(s, i, 1)
        if (gdepth == 1 && gwant && c ~ /[A-Za-z_]/) {
            match(substr(s, i), /^[A-Za-z_][A-Za-z0-9_]*/)
            edge(substr(s, i, RLENGTH), line)
            gwant = 0; i += RLENGTH; continue
        }
        if (c == "{") gdepth++
        else if (c == "}") { gdepth--; if (gdepth == 0) return i }
        else if (c == "," && gdepth == 1) gwant = 1
        i++
    }
    return 0
}

FNR == 1 { from = domain_of(FILENAME); instr = 0; bdepth = 0; gdepth = 0 }

{
    raw = $0
    if (raw !~ /^[ \t]*\/\//) {
        if (raw ~ /^[ \t]*#\[path[ \t]*=[ \t]*"[^"]*applets\// ||
            raw ~ /include(_str|_bytes)?![ \t]*\(.*"[^"]*applets\//)
            edge("applets", FNR)
    }
    code = code_of(raw)
    if (code ~ /(^|[^A-Za-z0-9_])mod[ \t]+applets([^A-Za-z0-9_]|$)/) edge("applets", FNR)
    # The crate root's re-exports: `pub use error::{exit, Error};` makes `rtool::Error` error's.
    if (FILENAME == "src/lib.rs" && match(code, /^[ \t]*pub use [a-z_]+::/)) {
        m = substr(code, RSTART, RLENGTH); sub(/^[ \t]*pub use /, "", m); sub(/::$/, "", m)
        names = substr(code, RSTART + RLENGTH); gsub(/[{};]/, "", names)
        k = split(names, item, ",")
        for (j = 1; j <= k; j++) {
            nm = item[j]; sub(/^.*(::| as )/, "", nm); gsub(/[ \t]/, "", nm)
            if (nm != "") alias[nm] = m
        }
    }
    rest = code; base = 0
    if (gdepth > 0) {
        at = group(rest, FNR)
        if (at == 0) next
        rest = substr(rest, at + 1); base += at
    }
    while (match(rest, /(crate|rtool)[ \t]*::[ \t]*/)) {
        s = RSTART; l = RLENGTH
        before = base + s > 1 ? substr(code, base + s - 1, 1) : ""
        after = substr(rest, s + l)
        if (before ~ /[A-Za-z0-9_$]/) { rest = substr(rest, s + l); base += s + l - 1; continue }
        if (substr(after, 1, 1) == "{") {
            gdepth = 1; gwant = 1
            at = group(substr(after, 2), FNR)
            if (at == 0) next
            rest = substr(after, 2 + at); base += s + l + at
            continue
        }
        if (match(after, /^[A-Za-z_][A-Za-z0-9_]*/)) edge(substr(after, 1, RLENGTH), FNR)
        rest = after; base += s + l - 1
    }
}

function dfs(u,    k, n, v, adj, j, cyc, at) {
    color[u] = 1; stack[++sp] = u
    n = split(succ[u], adj, " ")
    for (k = 1; k <= n; k++) {
        v = adj[k]
        if (color[v] == 1) {
            for (j = sp; stack[j] != v; j--) ;
            cyc = ""; at = ""
            for (; j <= sp; j++) {
                cyc = cyc stack[j] " -> "
                at = at "\n  " witness[stack[j], (j < sp ? stack[j + 1] : v)] ": " stack[j] " -> " (j < sp ? stack[j + 1] : v)
            }
            fail("circle: " cyc v at)
        } else if (color[v] == 0) {
            dfs(v)
        }
    }
    sp--; color[u] = 2
}

END {
    nd = split(ENVIRON["LAYERS_DOMAINS"], dom, "\n")
    for (i = 1; i <= nd; i++) known[dom[i]] = 1
    nt = split(ENVIRON["LAYERS_TABLE"], tl, "\n")
    for (i = 1; i <= nt; i++) {
        t = tl[i]; sub(/#.*/, "", t)
        if (t ~ /^[ \t]*$/) continue
        if (t ~ /^[ \t]*@/) {
            split(t, kv, "="); g = kv[1]; gsub(/[ \t]/, "", g); groups[g] = kv[2]
            continue
        }
        d = t; sub(/:.*/, "", d); gsub(/[ \t]/, "", d)
        allowed = t; sub(/^[^:]*:/, "", allowed)
        intable[d] = 1; may[d] = ""
        n = split(allowed, w, " ")
        for (j = 1; j <= n; j++) {
            if (w[j] in groups) {
                m = split(groups[w[j]], gw, " ")
                for (q = 1; q <= m; q++) { allow[d, gw[q]] = 1; may[d] = may[d] " " gw[q] }
            } else if (w[j] == "*") {
                for (q = 1; q <= nd; q++)
                    if (dom[q] != "applets" && dom[q] != "main") allow[d, dom[q]] = 1
                may[d] = may[d] " (every domain of the library)"
            } else {
                allow[d, w[j]] = 1; may[d] = may[d] " " w[j]
            }
        }
    }
    for (i = 1; i <= nd; i++)
        if (!(dom[i] in intable))
            fail("src/" dom[i] ": the domain `" dom[i] "` is not in the table of scripts/layers.sh")
    for (d in intable)
        if (!(d in known)) fail("scripts/layers.sh: the table names `" d "`, which src/ does not have")

    for (i = 1; i <= ne; i++) {
        f = e_from[i]; t = e_to[i]
        if (!(t in known) && (t in alias)) t = alias[t]
        if (t == f) continue
        if (!(t in known)) {
            fail(e_at[i] ": " f " -> " t ": not a domain (nor a name src/lib.rs re-exports)")
            continue
        }
        if (!allow[f, t])
            fail(e_at[i] ": " f " -> " t ": not allowed (" f " may import:" (may[f] == "" ? " nothing" : may[f]) ")")
        if (!((f, t) in witness)) {
            witness[f, t] = e_at[i]; succ[f] = succ[f] " " t; nedges++
        }
    }
    for (i = 1; i <= nd; i++) if (color[dom[i]] == 0) dfs(dom[i])

    if (problems) { print "layers: " problems " problem(s)"; exit 1 }
    print "layers: ok (" nedges " edges between " nd " domains, no circle)"
}
AWK
)

LAYERS_TABLE=$TABLE LAYERS_DOMAINS=$domains awk "$prog" "${files[@]}"
