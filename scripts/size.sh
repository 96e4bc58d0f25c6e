#!/bin/sh
# Prints the stripped size of the static binary and fails over the budget.
set -eu
bin=$1
budget=$2
size=$(stat -c %s "$bin")
printf 'rtool static binary: %s bytes (%s KiB, budget %s KiB)\n' "$size" $((size / 1024)) $((budget / 1024))
if [ "$size" -gt "$budget" ]; then
    echo "size: over budget by $((size - budget)) bytes" >&2
    exit 1
fi
