#!/bin/bash
# iceprod-dag job script for PBS: gen.0, 3 node(s) (generated; edits are overwritten)
#PBS -N gen.0
#PBS -o /runs/demo/batch/out/gen.0.^array_index^.out
#PBS -j oe
#PBS -l select=1:ncpus=4:mem=4000mb:ngpus=1
#PBS -l walltime=01:05:00
#PBS -J 1-3

cd /runs/demo || exit 97
case "${PBS_ARRAY_INDEX}" in
  1) NODE=gen_0; ATTEMPT=0; CMD='python3 pilot.pyz run --spec specs/gen.json --job 0';;
  2) NODE=gen_1; ATTEMPT=0; CMD='python3 pilot.pyz run --spec specs/gen.json --job 1';;
  3) NODE=gen_2; ATTEMPT=0; CMD='python3 pilot.pyz run --spec specs/gen.json --job 2';;
  *) echo "no array element ${PBS_ARRAY_INDEX}" >&2; exit 97;;
esac
rm -f /runs/demo/batch/exit/"$NODE".done
eval "$CMD"
rc=$?
mkdir -p /runs/demo/batch/exit
echo "$rc" > /runs/demo/batch/exit/."$NODE.$ATTEMPT.$$"
[ "$rc" -ne 0 ] || touch /runs/demo/batch/exit/"$NODE".done
mv -f /runs/demo/batch/exit/."$NODE.$ATTEMPT.$$" /runs/demo/batch/exit/"$NODE.$ATTEMPT"
exit "$rc"

