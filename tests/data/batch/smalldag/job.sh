#!/bin/sh
# node attempt mode: a stand-in for the pilot in hand-written test DAGs
node=$1; attempt=$2; mode=$3
mkdir -p out
# a test makes the work nodes slow (to cancel the run while they are queued) by creating ./slow
case "$node" in work_*) while [ -e slow ]; do sleep 0.2; done ;; esac
case "$mode" in
  fail-first) [ "$attempt" -ge 1 ] || { echo "$node: failing attempt $attempt on purpose" >&2; exit 1; } ;;
  over-memory)
    # the pilot kills a job over its memory request with exit 5 and asks for more next time
    if [ "$attempt" -eq 0 ]; then exit 5; fi ;;
  merge) cat out/*.txt > out/merged || exit 1 ;;
esac
echo "$node $attempt $(hostname)" > "out/$node.txt"
