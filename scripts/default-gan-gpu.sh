#!/bin/bash
# Phase 2 of the shipped default model, as it was run (docs: src/chromalab/weights/MODEL_CARD.md):
# on one GPU, at the same time and for the same 6 min 45 s,
#   gan100  PatchGAN fine-tuning of the phase-1 L1 model, configs/default-effunet-gan.yaml with L1 x100
#   gan30   the same with the config's L1 x30: what ships as `vivid`
#   unet    the same-wall-clock baseline: the 100-minute CPU unet (L1) trained on with L1
# then exports each run's final weights (and each GAN's half-way snapshot) as fp16 safetensors.
#
# Run from the repository root, with the photos prepared small enough to copy to a GPU machine
# (32 MB for the 9,505 training photos) and the unet baseline exported:
#   chromalab prepare ../shared/data/train .gpu/train --size 128 --format webp --quality 80 --min-size 8
#   chromalab export --model runs/unet-l1-samewallclock --format safetensors --half --out .gpu/unet-l1-100min.safetensors
#   bash scripts/default-gan-gpu.sh        # OUT=folder for the results (default /tmp/out)
# Python packages missing on the GPU machine can travel as wheels in .whl/ (installed first).
# DRY=1 PY=.venv/bin/python MAXT=00:00:03:00 EXTRA="--limit 32 --accelerator cpu ..." dry-runs it on a CPU.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
PY=${PY:-python3}; MAXT=${MAXT:-00:00:06:45}; EXTRA=${EXTRA:-}; RUNS=${RUNS:-/tmp/runs}
export PYTHONUNBUFFERED=1
if [ -d .whl ] && [ -z "${DRY:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:src
fi
nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null
$PY -c "import torch,lightning,kornia;print(torch.__version__, lightning.__version__, kornia.__version__, torch.cuda.is_available())"
mkdir -p $RUNS
# Index the photos once; each run then gets its own copy of the cache (no shared-file races).
CHROMALAB_CACHE=/tmp/cache0 $PY -c "from chromalab.data.folder import index_folder; print(index_folder('.gpu/train').summary())" || exit 1
for r in gan100 gan30 unet; do cp -r /tmp/cache0 /tmp/cache-$r; done
common="--data .gpu/train --no-progress --max-time $MAXT $EXTRA"
CHROMALAB_CACHE=/tmp/cache-gan100 $PY -m chromalab train --config configs/default-effunet-gan.yaml --init-from default \
  --l1-weight 100 --out $RUNS/gan100 $common > $RUNS/gan100.log 2>&1 &
CHROMALAB_CACHE=/tmp/cache-gan30 $PY -m chromalab train --config configs/default-effunet-gan.yaml --init-from default \
  --out $RUNS/gan30 $common > $RUNS/gan30.log 2>&1 &
CHROMALAB_CACHE=/tmp/cache-unet $PY -m chromalab train --config configs/unet-l1.yaml --init-from .gpu/unet-l1-100min.safetensors \
  --batch-size 64 --workers 4 --epochs 30 --lr 1e-3 --out $RUNS/unet $common > $RUNS/unet.log 2>&1 &
sleep 60; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv 2>/dev/null; uptime
wait
for r in gan100 gan30 unet; do echo "== $r"; tail -n 8 $RUNS/$r.log; done
# Exports: every run's final weights, and each GAN's snapshot nearest half-way.
$PY - "$RUNS" "$OUT" <<'PYEND'
import subprocess, sys
from pathlib import Path
runs, out = Path(sys.argv[1]), Path(sys.argv[2])
def export(src, dst):
    r = subprocess.run([sys.executable, "-m", "chromalab", "export", "--model", str(src), "--format", "safetensors",
                        "--half", "--out", str(out / dst)], capture_output=True, text=True)
    print(r.stdout.strip(), r.stderr.strip()[-300:])
for name in ("gan100", "gan30", "unet"):
    run = runs / name
    if (run / "model.safetensors").is_file():
        export(run / "model.safetensors", f"{name}-final.safetensors")
    snaps = sorted((run / "checkpoints").glob("epoch*.ckpt"))
    if name != "unet" and len(snaps) >= 2:
        mid = snaps[(len(snaps) - 1) // 2]
        export(mid, f"{name}-{mid.stem}.safetensors")
PYEND
# Logs and the last sample grid of each run (every epoch's grid would be tens of MB).
for r in gan100 gan30 unet; do cp "$(ls $RUNS/$r/samples/*.png | tail -n 1)" $RUNS/$r-last-samples.png; done
tar czf $OUT/logs.tar.gz -C $RUNS gan100.log gan30.log unet.log gan100/logs gan30/logs unet/logs gan100-last-samples.png gan30-last-samples.png unet-last-samples.png
ls -la $OUT
