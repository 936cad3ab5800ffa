#!/bin/sh
echo "pre $1" >> scripts.log
