#!/bin/bash
# iceprod-dag job script for Grid Engine: gen.0, 3 node(s) (generated; edits are overwritten)
#$ -N gen.0
#$ -S /bin/bash
#$ -o /runs/demo/batch/out/gen.0.$TASK_ID.out
#$ -j y
#$ -wd /runs/demo
#$ -l h_rt=01:05:00
#$ -l h_vmem=2000M
#$ -pe smp 4
#$ -l gpu=1
#$ -t 1-3

cd /runs/demo || exit 97
case "${SGE_TASK_ID}" in
  1) NODE=gen_0; ATTEMPT=0; CMD='python3 pilot.pyz run --spec specs/gen.json --job 0';;
  2) NODE=gen_1; ATTEMPT=0; CMD='python3 pilot.pyz run --spec specs/gen.json --job 1';;
  3) NODE=gen_2; ATTEMPT=0; CMD='python3 pilot.pyz run --spec specs/gen.json --job 2';;
  *) echo "no array element ${SGE_TASK_ID}" >&2; exit 97;;
esac
rm -f /runs/demo/batch/exit/"$NODE".done
eval "$CMD"
rc=$?
mkdir -p /runs/demo/batch/exit
echo "$rc" > /runs/demo/batch/exit/."$NODE.$ATTEMPT.$$"
[ "$rc" -ne 0 ] || touch /runs/demo/batch/exit/"$NODE".done
mv -f /runs/demo/batch/exit/."$NODE.$ATTEMPT.$$" /runs/demo/batch/exit/"$NODE.$ATTEMPT"
[ "$rc" -eq 0 ] || exit 100
exit 0

