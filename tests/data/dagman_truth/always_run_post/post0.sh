#!/bin/sh
echo "POST $*" >> macros.txt
exit 0
