#!/usr/bin/env bash
# A screenshot of the review screen in a real sixel terminal: xterm (-ti vt340) under Xvfb.
#
#   scripts/screenshot.sh [OUT.png] [TERMTAG]     (defaults: docs/review-sixel.png, target/release/termtag)
#
# Opens `termtag demo --offline` (the wood-board demo with its model's recorded proposals) in
# xterm, waits for the picture, accepts a proposal, and saves the X screen as a PNG.
# Needs: xterm, xvfb (Xvfb), x11-apps (xwd), xdotool, ImageMagick (convert). Debian:
#   apt-get install xterm xvfb x11-apps xfonts-base xdotool imagemagick
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-$root/docs/review-sixel.png}")
bin=$(realpath "${2:-$root/target/release/termtag}")
for tool in xterm Xvfb xwd convert xdotool; do
  command -v $tool >/dev/null || { echo "screenshot.sh: needs $tool (see the header)" >&2; exit 2; }
done
[ -x "$bin" ] || { echo "screenshot.sh: no termtag binary at $bin (cargo build --release)" >&2; exit 2; }

work=$(mktemp -d)
xvfb_pid=
term_pid=
cleanup() {
  [ -n "$term_pid" ] && kill "$term_pid" 2>/dev/null || true
  [ -n "$xvfb_pid" ] && kill "$xvfb_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The project: the demo (wood boards, the shipped model's recorded proposals, `--offline` so
# nothing is installed); it opens on the least certain board. One proposal is accepted on screen,
# so the picture shows a label and proposals.
project=$work/termtag-demo
# A screen with its own number, so a running X server is left alone.
display=:$((90 + RANDOM % 100))
Xvfb "$display" -screen 0 1400x1000x24 -nolisten tcp >/dev/null 2>&1 &
xvfb_pid=$!
sleep 1
export DISPLAY=$display
# vt340: xterm's sixel mode; 256 colour registers; window reports on for the cell size query.
cd "$work"
xterm -ti vt340 -geometry 160x48+0+0 -fa '' -fn 7x14 \
  -xrm 'XTerm*numColorRegisters: 256' -xrm 'XTerm*allowWindowOps: true' \
  -bg black -fg grey85 -e "$bin" demo "$project" --offline &
term_pid=$!
sleep "${SCREENSHOT_WAIT:-6}"
# Accept the selected proposal, select the next box.
for key in a Tab; do
  xdotool search --sync --pid "$term_pid" windowfocus --sync key "$key" 2>/dev/null || xdotool key "$key"
  sleep 1.5
done
xwd -root -silent | convert xwd:- -trim +repage -strip "PNG8:$out"
echo "$out: $(stat -c %s "$out") bytes"
