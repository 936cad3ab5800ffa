#!/bin/sh
echo "PRE $*" >> macros.txt
exit 0
