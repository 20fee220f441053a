#!/usr/bin/env bash
# Instructions per image, counted by valgrind (callgrind), which machine load cannot change:
# termtag's capacity pipeline (decode, orientation, resize, packing to a 640×640 float32 NCHW
# input), PIL's (`draft` + resize + numpy, benches/predict_baseline.py --capacity), and three JPEG
# decoders alone (benches/jpeg_decoders). Each runs over the files once and twice; the difference
# divided by the file count leaves out start-up and imports. Also the instructions spent in
# libjpeg-turbo's entropy decoder (`decode_mcu`), the floor every DCT scale still pays in full.
#
#   cargo bench --bench predict -- capacity 24 keep=target/capacity   # makes the files once
#   cargo bench --bench predict --no-run
#   scripts/decode-instructions.sh target/capacity/jpeg12
#
# Needs valgrind, and python3 with Pillow and numpy.
set -euo pipefail
dir=${1:?usage: scripts/decode-instructions.sh DIR_OF_JPEGS}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ls "$dir"/*.jpg | xargs -n1 realpath >"$work/once.txt"
cat "$work/once.txt" "$work/once.txt" >"$work/twice.txt"
n=$(wc -l <"$work/once.txt")
bench=$(ls -t "$root"/target/release/deps/predict-* | grep -v '\.d$' | head -1)
CARGO_TARGET_DIR="$root/target/jpeg-decoders" cargo build --quiet --release \
  --manifest-path "$root/benches/jpeg_decoders/Cargo.toml"
decoders="$root/target/jpeg-decoders/release/jpeg-decoders"
# The interpreter itself: valgrind does not follow a pyenv shim's exec.
python=$(python3 -c 'import sys; print(sys.executable)')

count() { # OUT COMMAND... -> instructions of the whole run
  valgrind --tool=callgrind --callgrind-out-file="$work/$1.out" "${@:2}" >/dev/null 2>"$work/$1.err" \
    || { cat "$work/$1.err" >&2; exit 1; }
  awk '/^totals:|^summary:/ {print $2; exit}' "$work/$1.out"
}
show() { # LABEL ONCE TWICE
  printf '%-40s %6.1f M instructions per image\n' "$1" "$(echo "($3 - $2) / $n / 1000000" | bc -l)"
}
row() { # NAME LABEL: runs NAME over the files once and twice
  local a b
  a=$(count "$1-1" $(cmd "$1" once 1))
  b=$(count "$1-2" $(cmd "$1" twice 2))
  show "$2" "$a" "$b"
}
cmd() { # NAME LIST REPEATS
  case $1 in
    termtag) echo "$bench pipeline $work/$2.txt" ;;
    pil) echo "$python $root/benches/predict_baseline.py --capacity 640 640 $work/$2.txt" ;;
    *) echo "$decoders $1 $3 $(cat "$work/once.txt")" ;;
  esac
}
decode_mcu() { # callgrind output -> instructions in libjpeg-turbo's entropy decoder
  callgrind_annotate --inclusive=yes "$work/$1.out" 2>/dev/null |
    awk '/jdhuff.c:decode_mcu / {gsub(",", "", $1); print $1; exit}'
}

echo "$n files from $dir"
row termtag "termtag pipeline (jpeg-decoder, 1/4)"
row pil "PIL pipeline (libjpeg-turbo, draft 1/4)"
row jpeg-decoder-quarter "decode only: jpeg-decoder 1/4"
row zune-full "decode only: zune-jpeg, full size"
row libjpeg-quarter "decode only: libjpeg-turbo C, 1/4"
show "of which entropy decoding (decode_mcu)" "$(decode_mcu libjpeg-quarter-1)" "$(decode_mcu libjpeg-quarter-2)"
