#!/bin/sh
# One node of the diamond (argument: its name). B fails once; D checks that B and C ran before it.
node=$1
case $node in
  B) if [ ! -e B.failed ]; then : > B.failed; echo "B fails its first attempt" >&2; exit 3; fi ;;
  D) if [ ! -s B.out ] || [ ! -s C.out ]; then echo "D ran before B and C" >&2; exit 4; fi ;;
esac
echo "$node done"
