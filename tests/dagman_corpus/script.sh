#!/bin/sh
# The one PRE/POST script of every corpus case: script.sh STEP NODE RETRY CODES [VALUE...].
# CODES as in job.sh, indexed by this node's earlier STEP invocations; an entry "ret" exits with the first
# VALUE (say $RETURN: DAGMan expands a macro only as a whole argument). Appends "NODE STEP RETRY EXIT VALUE..."
# to steps.log.
step=$1; node=$2; retry=$3; codes=$4
shift 4
n=$(grep -c "^$node $step " steps.log 2>/dev/null || true)
code=$(echo "$codes" | awk -F, -v n="${n:-0}" '{ if ($0 == "") print 0; else if (n + 1 <= NF) print $(n + 1); else print $NF }')
if [ "$code" = ret ]; then code=$1; fi
echo "$node $step $retry $code $*" | sed 's/ *$//' >> steps.log
exit "$code"
