#!/bin/sh
# The one job of every corpus case: job.sh NODE RETRY CODES. CODES is a comma list of exit codes, one per
# invocation of this node's job (the last repeats); empty means 0. Appends "NODE JOB RETRY start" and then
# "NODE JOB RETRY EXIT" to steps.log in the case folder, so the outcome is judged from what ran.
node=$1; retry=$2; codes=$3
n=$(grep -c "^$node JOB [0-9]* [0-9]" steps.log 2>/dev/null || true)
echo "$node JOB $retry start" >> steps.log
code=$(echo "$codes" | awk -F, -v n="${n:-0}" '{ if ($0 == "") print 0; else if (n + 1 <= NF) print $(n + 1); else print $NF }')
echo "$node JOB $retry $code" >> steps.log
exit "$code"
