#!/bin/bash
# iceprod-dag job script for Slurm: gen.0, 3 node(s) (generated; edits are overwritten)
#SBATCH --job-name=gen.0
#SBATCH --output=/runs/demo/batch/out/gen.0_%a.out
#SBATCH --chdir=/runs/demo
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=4
#SBATCH --mem=4000M
#SBATCH --time=01:05:00
#SBATCH --gres=gpu:1
#SBATCH --array=1-3

cd /runs/demo || exit 97
case "${SLURM_ARRAY_TASK_ID}" in
  1) NODE=gen_0; ATTEMPT=0; CMD='python3 pilot.pyz run --spec specs/gen.json --job 0';;
  2) NODE=gen_1; ATTEMPT=0; CMD='python3 pilot.pyz run --spec specs/gen.json --job 1';;
  3) NODE=gen_2; ATTEMPT=0; CMD='python3 pilot.pyz run --spec specs/gen.json --job 2';;
  *) echo "no array element ${SLURM_ARRAY_TASK_ID}" >&2; exit 97;;
esac
rm -f /runs/demo/batch/exit/"$NODE".done
eval "$CMD"
rc=$?
mkdir -p /runs/demo/batch/exit
echo "$rc ${SLURM_JOB_ID}" > /runs/demo/batch/exit/."$NODE.$ATTEMPT.$$"
[ "$rc" -ne 0 ] || touch /runs/demo/batch/exit/"$NODE".done
mv -f /runs/demo/batch/exit/."$NODE.$ATTEMPT.$$" /runs/demo/batch/exit/"$NODE.$ATTEMPT"
exit "$rc"

