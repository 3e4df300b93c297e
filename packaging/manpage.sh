#!/usr/bin/env bash
# Writes a man page (roff) for a daemon from its own --help, so the page documents every flag the
# binary accepts and cannot drift from it.
#   packaging/manpage.sh BINARY NAME SECTION VERSION "one-line summary" "description paragraph" FILES... > NAME.SECTION
set -euo pipefail
bin=$1 name=$2 section=$3 version=$4 summary=$5 description=$6
shift 6
date=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" +%Y-%m-%d)
esc() { sed -e 's/\\/\\e/g' -e 's/-/\\-/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"; }
upper=$(echo "$name" | tr '[:lower:]' '[:upper:]')
echo ".TH $upper $section \"$date\" \"$name $version\" \"System Administration\""
echo ".SH NAME"
echo "$name \\- $(echo "$summary" | esc)"
echo ".SH SYNOPSIS"
echo ".B $(echo "$name" | esc)"
echo "[\\fIflags\\fR]"
echo ".SH DESCRIPTION"
echo "$description" | esc
"$bin" --help | awk '/^Usage:/ {u=1; next} /^Flags:/ {u=0} u && NF {print}' > /tmp/manpage-usage.$$ || true
if [ -s /tmp/manpage-usage.$$ ]; then
  echo ".SH COMMANDS"
  echo ".nf"
  sed -e 's/^  //' -e "s/^control-plane/$name/" /tmp/manpage-usage.$$ | esc
  echo ".fi"
fi
rm -f /tmp/manpage-usage.$$
echo ".SH OPTIONS"
# "  --flag    Help text." lines; a help text that wraps continues on lines without a flag.
"$bin" --help | awk '/^Flags:/ {f=1; next} f' | while IFS= read -r line; do
  if [[ $line =~ ^[[:space:]]+(--[a-z0-9-]+)[[:space:]]+(.*)$ ]]; then
    echo ".TP"
    echo ".B $(echo "${BASH_REMATCH[1]}" | esc)"
    echo "${BASH_REMATCH[2]}" | esc
  elif [[ -n ${line// /} ]]; then
    echo "$line" | sed 's/^ *//' | esc
  fi
done
if [ $# -gt 0 ]; then
  echo ".SH FILES"
  for f in "$@"; do
    echo ".TP"
    echo ".I $(echo "${f%%:*}" | esc)"
    echo "${f#*:}" | esc
  done
fi
echo ".SH SEE ALSO"
echo ".BR systemctl (1),"
echo ".BR journalctl (1),"
echo ".BR kubectl (1)"
