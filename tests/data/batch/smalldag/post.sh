#!/bin/sh
echo "post $1 $2" >> scripts.log
exit "$2"
