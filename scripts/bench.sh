#!/bin/sh
# Benchmarks rtool against the peer tools, side by side in one run, and prints ratios.
# Each applet with a speed target adds a section here.
set -eu
bin=$1
echo "rtool bench: $("$bin" --version)"
echo "(no benchmarks yet)"
