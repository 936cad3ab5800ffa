#!/bin/sh
# What a node was given, as its output: one argument per line in brackets, then GREETING if it is set.
# "fail-first R": exit 1 when R (the node's $(RETRY)) is 0; "fail": exit 3.
echo "argc=$#"
for a in "$@"; do printf '[%s]\n' "$a"; done
if [ -n "${GREETING+x}" ]; then printf 'GREETING=[%s]\n' "$GREETING"; fi
echo "to stderr" >&2
case "$1" in
  fail-first) if [ "$2" = 0 ]; then exit 1; fi ;;
  fail) exit 3 ;;
esac
exit 0
