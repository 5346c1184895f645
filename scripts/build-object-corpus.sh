#!/usr/bin/env bash
# Add animals, houses and saturated landscapes to the scene corpus (docs/scene-corpus.md).
#
#   bash scripts/build-object-corpus.sh CATSDOGS_GIT MONET_GIT HOUSES_GIT OUT
#
# The git directories are snapshots of github.com/4GeeksAcademy/Deep-Learning-CarlosFS (Kaggle's
# dogs-vs-cats photos), github.com/WyattBlair77/MonetGAN (dataset/photo_jpg: landscape photos)
# and github.com/emanhamed/Houses-dataset (kitchens, bedrooms, bathrooms, house fronts). OUT is
# the folder that scripts/build-scene-corpus.sh filled; this script adds
#   OUT/raw/objects/          the photos as the repositories hold them (read-only inputs)
#   OUT/train-objects/        prepare's output: dogs-vs-cats train/, Monet photos, houses
#   OUT/heldout-animals/      dogs-vs-cats test1/ at 256 px (like the evaluation photos), never
#                             trained on: checkpoint and post-processing choice
#   OUT/all/                  links to train/ and train-objects/: the training folder
# Running it again resumes; it never deletes anything.
set -euo pipefail
if [ $# -ne 4 ]; then
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
catsdogs=$1 monet=$2 houses=$3 out=$4
chromalab=${CHROMALAB:-chromalab}
for repo in "$catsdogs" "$monet" "$houses"; do
    git -C "$repo" rev-parse --verify -q HEAD >/dev/null || { echo "$repo: not a git directory" >&2; exit 2; }
done
[ -d "$out/train" ] || { echo "$out/train: run scripts/build-scene-corpus.sh first" >&2; exit 2; }

unpack() {  # unpack GIT_DIR DEST PATH... (skipped when DEST already exists)
    local repo=$1 dest=$2; shift 2
    [ -e "$dest" ] && { echo "kept $dest (already unpacked)"; return; }
    mkdir -p "$dest.partial"
    # git archive warns about files the snapshot lacks (TFRecords, large files) and goes on.
    git -C "$repo" archive HEAD "$@" | tar -x -C "$dest.partial" || true
    mv "$dest.partial" "$dest"
    echo "unpacked $(find "$dest" -type f | wc -l) files from $repo into $dest"
}

unpack "$catsdogs" "$out/raw/objects/train/catsdogs" train
unpack "$monet" "$out/raw/objects/train/monet" dataset/photo_jpg
unpack "$houses" "$out/raw/objects/train/houses" "Houses Dataset"
unpack "$catsdogs" "$out/raw/objects/heldout/catsdogs" test1

# Same treatment as the scenes: 128-pixel center crops, no gray or toned photos, no repeats.
"$chromalab" prepare "$out/raw/objects/train" "$out/train-objects" --size 128 --drop-gray --dedupe --no-progress
"$chromalab" prepare "$out/raw/objects/heldout" "$out/heldout-animals" --size 256 --drop-gray --dedupe --no-progress

mkdir -p "$out/all"
[ -e "$out/all/scenes" ] || ln -s ../train "$out/all/scenes"
[ -e "$out/all/objects" ] || ln -s ../train-objects "$out/all/objects"
echo "training folder: $out/all ($(find -L "$out/all" -name '*.png' -o -name '*.jpg' | wc -l) photos)"
