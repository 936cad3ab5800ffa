#!/bin/sh
# iceprod-dag FINAL node: record how the DAG ended, then fail if it failed so DAGMan reports it.
# $1 = DAGMan's $DAG_STATUS, $2 = $FAILED_COUNT
cd "$(dirname "$0")" || exit 1
printf 'dag_status=%s\nfailed_count=%s\n' "$1" "$2" > dataset.done
[ "$1" = 0 ]
