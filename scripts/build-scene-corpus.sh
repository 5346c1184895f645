#!/usr/bin/env bash
# Rebuild the natural-scene training corpus of the shipped models (docs/scene-corpus.md).
#
#   bash scripts/build-scene-corpus.sh MINIPLACES_GIT INTEL_GIT OUT
#
# MINIPLACES_GIT and INTEL_GIT are git directories (bare clones or snapshots) of
# github.com/sulekahraman/miniplaces and github.com/luangtatipsy/intel-image-classification,
# e.g. from `git clone --bare https://github.com/sulekahraman/miniplaces`. OUT (outside the
# repository: the photos are never committed) receives
#   OUT/raw/         the photos as the repositories hold them (read-only inputs of prepare)
#   OUT/train/       chromalab prepare's training set: MiniPlaces train+test, Intel scenes
#   OUT/heldout/     MiniPlaces val, never trained on: checkpoint and temperature choice
# Each prepared folder has prepare's manifest.csv (source path, content hash, status) and
# summary.json (counts). Running it again resumes; it never deletes anything.
set -euo pipefail
if [ $# -ne 3 ]; then
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
miniplaces=$1 intel=$2 out=$3
chromalab=${CHROMALAB:-chromalab}
for repo in "$miniplaces" "$intel"; do
    git -C "$repo" rev-parse --verify -q HEAD >/dev/null || { echo "$repo: not a git directory" >&2; exit 2; }
done

unpack() {  # unpack GIT_DIR PATH... into DEST (skipped when DEST already exists)
    local repo=$1 dest=$2; shift 2
    [ -e "$dest" ] && { echo "kept $dest (already unpacked)"; return; }
    mkdir -p "$dest.partial"
    # git archive warns about files the snapshot lacks (large non-photo files) and goes on.
    git -C "$repo" archive HEAD "$@" | tar -x -C "$dest.partial"
    mv "$dest.partial" "$dest"
    echo "unpacked $(find "$dest" -type f | wc -l) files from $repo into $dest"
}

unpack "$miniplaces" "$out/raw/train/miniplaces" data/train data/test
unpack "$miniplaces" "$out/raw/heldout/miniplaces" data/val
# Intel scenes: datasets/ only (results/predictions is a copy of datasets/seg_pred).
unpack "$intel" "$out/raw/train/intel" datasets

# 128-pixel center crops (MiniPlaces is 128x128 already), no gray or toned photos, no repeats.
"$chromalab" prepare "$out/raw/train" "$out/train" --size 128 --drop-gray --dedupe --no-progress
"$chromalab" prepare "$out/raw/heldout" "$out/heldout" --size 128 --drop-gray --dedupe --no-progress
