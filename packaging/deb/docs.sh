#!/bin/sh
# Writes what Debian wants beside each package's files, into OUT: the man
# page (help2man, from --help, with `agentkv serve --help` as a section) and
# a changelog per package, for the version in VERSION_FILE.
# Usage: docs.sh AGENTKV_BINARY VERSION_FILE MAINTAINER OUT
set -eu
bin=$1 version=$(cat "$2") maintainer=$3 out=$4
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
help2man --no-info --no-discard-stderr --version-string="$version" \
  --name="durable per-agent KV memory in front of llama-server" \
  --include="$here/agentkv.h2m" --output="$out/agentkv.1" "$bin"
{
  echo '.SH "SERVE OPTIONS"'
  echo '.nf'
  "$bin" serve --help | sed -e 's/\\/\\e/g' -e 's/^\./\\\&./'
  echo '.fi'
} >>"$out/agentkv.1"
gzip -9nf "$out/agentkv.1"
# SOURCE_DATE_EPOCH (reproducible builds) or the commit's own date.
when=$(date -u -R -d "@${SOURCE_DATE_EPOCH:-$(git -C "$here" log -1 --format=%ct 2>/dev/null || date +%s)}")
for package in agentkv agentkv-llama-server; do
  mkdir -p "$out/$package"
  printf '%s (%s) unstable; urgency=medium\n\n  * Built from agentkv %s.\n\n -- %s  %s\n' \
    "$package" "$version" "$version" "$maintainer" "$when" >"$out/$package/changelog"
  gzip -9nf "$out/$package/changelog"
done
