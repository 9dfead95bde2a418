#!/bin/sh
# Prints the fill level of every local file system; runs on the host, sent over stdin.
set -eu
df -P -x tmpfs -x devtmpfs | awk 'NR > 1 { print $6, $5 }'
