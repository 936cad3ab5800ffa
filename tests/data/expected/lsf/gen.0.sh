#!/bin/bash
# iceprod-dag job script for LSF: gen.0, 3 node(s) (generated; edits are overwritten)
#BSUB -J "gen.0[1-3]"
#BSUB -o /runs/demo/batch/out/gen.0.%I.out
#BSUB -cwd /runs/demo
#BSUB -n 4
#BSUB -R "span[hosts=1] rusage[mem=4000]"
#BSUB -M 4000
#BSUB -W 1:05
#BSUB -gpu "num=1"

cd /runs/demo || exit 97
case "${LSB_JOBINDEX}" in
  1) NODE=gen_0; ATTEMPT=0; CMD='python3 pilot.pyz run --spec specs/gen.json --job 0';;
  2) NODE=gen_1; ATTEMPT=0; CMD='python3 pilot.pyz run --spec specs/gen.json --job 1';;
  3) NODE=gen_2; ATTEMPT=0; CMD='python3 pilot.pyz run --spec specs/gen.json --job 2';;
  *) echo "no array element ${LSB_JOBINDEX}" >&2; exit 97;;
esac
rm -f /runs/demo/batch/exit/"$NODE".done
eval "$CMD"
rc=$?
mkdir -p /runs/demo/batch/exit
echo "$rc" > /runs/demo/batch/exit/."$NODE.$ATTEMPT.$$"
[ "$rc" -ne 0 ] || touch /runs/demo/batch/exit/"$NODE".done
mv -f /runs/demo/batch/exit/."$NODE.$ATTEMPT.$$" /runs/demo/batch/exit/"$NODE.$ATTEMPT"
exit "$rc"

