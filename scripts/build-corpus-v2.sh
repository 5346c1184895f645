#!/usr/bin/env bash
# Corpus v2: the scene and object corpora plus people, vehicles, birds and things, with one
# held-out slice per kind of photo (docs/scene-corpus.md, "Corpus v2").
#
#   bash scripts/build-corpus-v2.sh SNAPSHOTS OUT
#
# SNAPSHOTS holds one git directory per public repository of ../shared/data/corpora.md, found
# as SNAPSHOTS/OWNER+NAME/repo (the search tool's `fetch` layout) or SNAPSHOTS/NAME.git (from
# `git clone --bare https://github.com/OWNER/NAME SNAPSHOTS/NAME.git`). OUT (outside the
# repository: photos are never committed) receives what the v1 scripts build (train/,
# train-objects/, heldout/, heldout-animals/) and
#   OUT/raw/v2/train/<source>/     new photos as the repositories hold them (read-only inputs)
#   OUT/raw/v2/heldout/<kind>/     every k-th photo of a source, moved aside before anything
#                                  is prepared, so it is never trained on
#   OUT/train-v2/                  prepare's 128-px training photos of the new sources
#   OUT/slices/<kind>/             held-out slices at 256 px (shorter side, center crop), about
#                                  500 each: people, vehicles, birds, objects, animals, scenes
#   OUT/all-v2/                    links to train/, train-objects/ and train-v2/: the training folder
# Running it again resumes; it never deletes anything.
set -euo pipefail
if [ $# -ne 2 ]; then
    sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
snapshots=$1 out=$2
here=$(cd "$(dirname "$0")" && pwd)
chromalab=${CHROMALAB:-chromalab}
python=${PYTHON:-python3}

snapshot() {  # snapshot OWNER/NAME -> its git directory
    local owner=${1%%/*} name=${1#*/} candidate
    for candidate in "$snapshots/$owner+$name/repo" "$snapshots/$owner+$name/repo/.git" \
                     "$snapshots/$name.git" "$snapshots/$name"; do
        if git -C "$candidate" rev-parse --verify -q HEAD >/dev/null 2>&1; then
            echo "$candidate"; return
        fi
    done
    echo "$snapshots: no snapshot of $1 (expected $owner+$name/repo or $name.git)" >&2
    return 2
}

# Every snapshot is found before anything is written.
declare -A git_dir
for repo in sulekahraman/miniplaces luangtatipsy/intel-image-classification \
            4GeeksAcademy/Deep-Learning-CarlosFS WyattBlair77/MonetGAN emanhamed/Houses-dataset \
            xerow03/UTKFace bearpaw/clothing-co-parsing chandrikadeb7/Face-Mask-Detection \
            fmejbah/car_dataset1 serizba/vision toyo97/Homework2-Caltech101 \
            martinwestin/flower_classification alexeygrigorev/clothing-dataset-small \
            congduytran12/Trash-Classification-; do
    git_dir[$repo]=$(snapshot "$repo") || exit 2
done

# Version 1: scenes, then animals, houses and landscapes (their own scripts, also resumable).
CHROMALAB=$chromalab bash "$here/build-scene-corpus.sh" \
    "${git_dir[sulekahraman/miniplaces]}" "${git_dir[luangtatipsy/intel-image-classification]}" "$out"
CHROMALAB=$chromalab bash "$here/build-object-corpus.sh" \
    "${git_dir[4GeeksAcademy/Deep-Learning-CarlosFS]}" "${git_dir[WyattBlair77/MonetGAN]}" \
    "${git_dir[emanhamed/Houses-dataset]}" "$out"

# unpack SOURCE OWNER/NAME KIND EVERY PATH...: unpack PATH... of the snapshot into
# raw/v2/train/SOURCE; with KIND, every EVERY-th photo (sorted by path) goes to
# raw/v2/heldout/KIND/SOURCE first. Skipped when raw/v2/train/SOURCE exists.
unpack() {
    local source=$1 name=$2 kind=$3 every=$4 repo=${git_dir[$2]}; shift 4
    local dest="$out/raw/v2/train/$source" heldout="$out/raw/v2/heldout/$kind/$source"
    [ -e "$dest" ] && { echo "kept $dest (already unpacked)"; return; }
    # Our own half-done unpack from an interrupted run: the choice is by sorted path, so redo it.
    rm -rf "$dest.partial" "$heldout"
    mkdir -p "$dest.partial"
    # git archive warns about files the snapshot lacks (large non-photo files) and goes on.
    git -C "$repo" archive HEAD "$@" | tar -x -C "$dest.partial" || true
    if [ "$kind" != - ]; then
        "$python" "$here/hold_out.py" "$dest.partial" "$heldout" --every "$every"
    fi
    mv "$dest.partial" "$dest"
    echo "unpacked $(find "$dest" -type f | wc -l) training files of $name into $dest"
}

# People: faces of every age (UTKFace), portraits, full-body people in streets.
unpack utkface xerow03/UTKFace people 95 data
unpack fashion-people bearpaw/clothing-co-parsing people 8 photos
unpack portraits chandrikadeb7/Face-Mask-Detection - - dataset/without_mask
# Vehicles: Stanford Cars (train split only: its test photos stay out of the repository's path).
unpack cars fmejbah/car_dataset1 vehicles 16 cars_train
# Birds: a CUB-200-2011 subset.
unpack birds serizba/vision birds 12 ex03/task2/bird_dataset/images
# Things: Caltech-101 (not BACKGROUND_Google: clutter, not objects; Faces_easy repeats Faces),
# flowers, clothes and shoes, bottles and cans.
unpack caltech101 toyo97/Homework2-Caltech101 objects 15 \
    ':(exclude)101_ObjectCategories/BACKGROUND_Google' ':(exclude)101_ObjectCategories/Faces_easy' \
    101_ObjectCategories
unpack flowers martinwestin/flower_classification - - flowers
unpack clothing alexeygrigorev/clothing-dataset-small - - train validation test
unpack trash congduytran12/Trash-Classification- - - dataset-resized

# Training photos: 128-px center crops like v1; no gray or toned photos, no exact repeats.
"$chromalab" prepare "$out/raw/v2/train" "$out/train-v2" --size 128 --drop-gray --dedupe --no-progress
mkdir -p "$out/all-v2"
for part in train train-objects train-v2; do
    [ -e "$out/all-v2/$part" ] || ln -s "../$part" "$out/all-v2/$part"
done

# Held-out candidates at 256 px, as the evaluation protocol crops (people's faces are 200 px:
# upscaled, like every photo the protocol meets below 256).
for kind in people vehicles birds objects; do
    "$chromalab" prepare "$out/raw/v2/heldout/$kind" "$out/heldout-v2/$kind" --size 256 --drop-gray --dedupe --no-progress
done

# The leak check: every training photo against the held-out candidates, val/ and dev/. The
# report goes to docs/reports/; held-out photos with a near-duplicate among the training
# photos are left out of the slices (listed in OUT/slices-near-duplicates.txt).
shared=${SHARED:-$here/../../shared/data}
if [ ! -e "$out/slices-near-duplicates.txt" ]; then
    "$python" "$here/near_duplicates.py" "$out/all-v2" "$out/heldout-v2" "$out/heldout-animals" "$out/heldout" \
        "$shared/val" "$shared/dev" --matches "$out/slices-near-duplicates.txt.partial" \
        --out "$out/near-duplicates-corpus-v2.md" --overwrite || true
    mv "$out/slices-near-duplicates.txt.partial" "$out/slices-near-duplicates.txt"
fi

# Slices: links to every EVERY-th held-out photo (sorted by path), near-duplicates left out.
# Animals and scenes are the v1 held-out photos (dogs-vs-cats test1/ at 256 px, MiniPlaces val
# at its own 128 px), every 24th and every 19th as the v1 choices were made.
link_slice() {  # link_slice SRC KIND EVERY
    local src=$1 dest="$out/slices/$2" every=$3
    [ -e "$dest" ] && { echo "kept $dest"; return; }
    mkdir -p "$dest.partial"
    find "$src" -type f \( -name '*.jpg' -o -name '*.png' \) | sort | awk "(NR - 1) % $every == 0" |
        while read -r photo; do
            grep -qxF "$(realpath "$photo")" "$out/slices-near-duplicates.txt" && continue
            ln -s "$(realpath "$photo")" "$dest.partial/$(basename "$(dirname "$photo")")-$(basename "$photo")"
        done
    mv "$dest.partial" "$dest"
}
for kind in people vehicles birds objects; do link_slice "$out/heldout-v2/$kind" "$kind" 1; done
link_slice "$out/heldout-animals" animals 24
link_slice "$out/heldout" scenes 19
for kind in people vehicles birds objects animals scenes; do
    echo "slice $kind: $(find -L "$out/slices/$kind" -type f | wc -l) photos"
done
echo "training folder: $out/all-v2 ($(find -L "$out/all-v2" -name '*.jpg' -o -name '*.png' | wc -l) photos)"
