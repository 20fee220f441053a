#!/usr/bin/env bash
# A screenshot of the review screen in a real sixel terminal: xterm (-ti vt340) under Xvfb.
#
#   scripts/screenshot.sh [OUT.png] [TERMTAG]     (defaults: docs/review-sixel.png, target/release/termtag)
#
# Makes a project of two of the demo's photos with their labels and imports model proposals for
# them, opens `termtag label` in xterm, waits for the picture, and saves the X screen as a PNG.
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

# The project: two of the demo's photos with model proposals (COCO with scores); one proposal is
# accepted on screen, so the picture shows a label and proposals.
"$bin" demo "$work/demo" </dev/null >/dev/null
project=$work/review
mkdir -p "$project/images"
cp "$work/demo/images/coffee.png" "$work/demo/images/chelsea.png" "$project/images/"
"$bin" init "$project" --task detect --classes cup,bowl,spoon,cat,person --source "$project/images" >/dev/null
cat >"$work/proposals.coco.json" <<'JSON'
{"images": [{"id": 1, "file_name": "coffee.png", "width": 600, "height": 400},
            {"id": 2, "file_name": "chelsea.png", "width": 451, "height": 300}],
 "categories": [{"id": 1, "name": "cup"}, {"id": 2, "name": "bowl"}, {"id": 3, "name": "spoon"},
                {"id": 4, "name": "cat"}],
 "annotations": [
  {"id": 1, "image_id": 1, "category_id": 2, "bbox": [75, 70, 405, 320], "score": 0.88},
  {"id": 2, "image_id": 1, "category_id": 1, "bbox": [172, 18, 238, 290], "score": 0.64},
  {"id": 3, "image_id": 1, "category_id": 3, "bbox": [325, 65, 100, 263], "score": 0.41},
  {"id": 4, "image_id": 2, "category_id": 4, "bbox": [40, 10, 380, 285], "score": 0.93}]}
JSON
"$bin" -C "$project" import "$work/proposals.coco.json" --format coco --as predictions >/dev/null

# A screen with its own number, so a running X server is left alone.
display=:$((90 + RANDOM % 100))
Xvfb "$display" -screen 0 1400x1000x24 -nolisten tcp >/dev/null 2>&1 &
xvfb_pid=$!
sleep 1
export DISPLAY=$display
# vt340: xterm's sixel mode; 256 colour registers; window reports on for the cell size query.
cd "$project"
xterm -ti vt340 -geometry 160x48+0+0 -fa '' -fn 7x14 \
  -xrm 'XTerm*numColorRegisters: 256' -xrm 'XTerm*allowWindowOps: true' \
  -bg black -fg grey85 -e "$bin" label --graphics auto &
term_pid=$!
sleep "${SCREENSHOT_WAIT:-6}"
# Accept the selected proposal, select the next box.
for key in a Tab; do
  xdotool search --sync --pid "$term_pid" windowfocus --sync key "$key" 2>/dev/null || xdotool key "$key"
  sleep 1.5
done
xwd -root -silent | convert xwd:- -trim +repage -strip "PNG8:$out"
echo "$out: $(stat -c %s "$out") bytes"
