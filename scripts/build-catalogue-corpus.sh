#!/usr/bin/env bash
# Add the catalogue photos of ../shared/data/train to the training corpus (the catalogue phase tried on
# 2026-12-04 and not shipped: configs/default-catalogue.yaml; MODEL_CARD.md says what it did).
#
#   bash scripts/build-catalogue-corpus.sh CATALOGUE OUT
#
# CATALOGUE is the shared training folder (Caltech-101 and PACS photos, one object each); OUT
# is the corpus folder that scripts/build-scene-corpus.sh and build-object-corpus.sh filled.
# Every 20th photo in sorted path order is held out. OUT receives
#   OUT/raw/catalogue/{train,heldout}/  links to the photos (read-only inputs of prepare)
#   OUT/train-catalogue/     prepare's training set at 128 px (gray and toned photos, repeats dropped)
#   OUT/heldout-catalogue/   the held-out twentieth at 128 px: checkpoint choice, never trained on
#   OUT/all3/                scenes + objects + the catalogue linked 3 times (it is 5% of the
#                            photos; 3 links make each catalogue photo come up 3 times per pass)
# Running it again resumes; it never deletes anything.
set -euo pipefail
if [ $# -ne 2 ]; then
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
catalogue=$(cd "$1" && pwd) out=$2
chromalab=${CHROMALAB:-chromalab}
[ -d "$out/train" ] && [ -d "$out/train-objects" ] || {
    echo "$out: run scripts/build-scene-corpus.sh and scripts/build-object-corpus.sh first" >&2; exit 2; }

if [ ! -e "$out/raw/catalogue" ]; then
    mkdir -p "$out/raw/catalogue.partial"
    # LC_ALL=C: the same order, hence the same held-out photos, on every machine.
    (cd "$catalogue" && find . -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) | LC_ALL=C sort) |
        awk '{ print (NR % 20 == 1 ? "heldout" : "train") "\t" substr($0, 3) }' |
        while IFS=$'\t' read -r split path; do
            mkdir -p "$out/raw/catalogue.partial/$split/$(dirname "$path")"
            ln -s "$catalogue/$path" "$out/raw/catalogue.partial/$split/$path"
        done
    mv "$out/raw/catalogue.partial" "$out/raw/catalogue"
fi
"$chromalab" prepare "$out/raw/catalogue/train" "$out/train-catalogue" --size 128 --drop-gray --dedupe --no-progress
"$chromalab" prepare "$out/raw/catalogue/heldout" "$out/heldout-catalogue" --size 128 --drop-gray --dedupe --no-progress

mkdir -p "$out/all3"
[ -e "$out/all3/scenes" ] || ln -s ../train "$out/all3/scenes"
[ -e "$out/all3/objects" ] || ln -s ../train-objects "$out/all3/objects"
for copy in 1 2 3; do
    [ -e "$out/all3/catalogue-$copy" ] || ln -s ../train-catalogue "$out/all3/catalogue-$copy"
done
echo "training folder: $out/all3 ($(find -L "$out/all3" -name '*.png' -o -name '*.jpg' | wc -l) photo paths)"
