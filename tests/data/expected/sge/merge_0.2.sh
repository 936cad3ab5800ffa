#!/bin/bash
# iceprod-dag job script for Grid Engine: merge_0 attempt 2 (generated; edits are overwritten)
#$ -N merge_0.2
#$ -S /bin/bash
#$ -o /runs/demo/batch/out/merge_0.2.out
#$ -j y
#$ -wd /runs/demo
#$ -l h_rt=01:35:00
#$ -l h_vmem=4096M
#$ -hold_jid 101,102

cd /runs/demo || exit 97
NODE=merge_0; ATTEMPT=2; CMD='python3 pilot.pyz run --spec specs/merge.json --job 0'
for p in proc_0 proc_1; do
  [ -e /runs/demo/batch/exit/"$p".done ] || { echo "parent $p not done" >&2; echo 97 > /runs/demo/batch/exit/"$NODE.$ATTEMPT"; exit 97; }
done
rm -f /runs/demo/batch/exit/"$NODE".done
eval "$CMD"
rc=$?
mkdir -p /runs/demo/batch/exit
echo "$rc" > /runs/demo/batch/exit/."$NODE.$ATTEMPT.$$"
[ "$rc" -ne 0 ] || touch /runs/demo/batch/exit/"$NODE".done
mv -f /runs/demo/batch/exit/."$NODE.$ATTEMPT.$$" /runs/demo/batch/exit/"$NODE.$ATTEMPT"
[ "$rc" -eq 0 ] || exit 100
exit 0

