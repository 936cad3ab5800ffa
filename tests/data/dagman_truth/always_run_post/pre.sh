#!/bin/sh
echo "PRE $*" >> macros.txt
exit $2
