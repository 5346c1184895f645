"""chromalab export --model M --format onnx|safetensors --out PATH [--overwrite]"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from chromalab.checkpoint import ModelSpec


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export a model to ONNX, or to a (fp16) safetensors file for shipping",
        description="Export a trained model (run folder, .ckpt or .safetensors). ONNX files are "
        "checked against PyTorch on a random input before they are kept.",
    )
    parser.add_argument("--model", required=True, help="run folder, checkpoint or model file")
    parser.add_argument("--format", choices=["onnx", "safetensors"], default="onnx")
    parser.add_argument("--out", required=True, help="output file")
    parser.add_argument("--half", action="store_true", help="safetensors: store weights as fp16")
    parser.add_argument("--size", type=int, default=None, help="ONNX: example input size (default: the model's)")
    parser.add_argument("--temperature", type=float, default=None, metavar="T",
                        help="classification models: store T as the annealed-mean temperature they "
                        "decode with (and the one the ONNX graph holds)")
    parser.add_argument("--saturation", type=float, default=None, metavar="S",
                        help="store S as the model's own chroma multiplier (1 = as trained): an L1 "
                        "model's cautious chroma, scaled by a factor chosen by FID on held-out photos")
    parser.add_argument("--smoothing", default=None, metavar="RADIUS,EPS",
                        help="store edge-aware chroma smoothing in the model's spec: a guided filter "
                        "on a*b* with L* as the guide, RADIUS a fraction of the side (e.g. 0.03125), "
                        "EPS its regularizer; 'off' removes it (chromalab.inference.smoothing)")
    parser.add_argument("--int8", action="store_true",
                        help="ONNX: quantize to int8 (static QDQ, onnxruntime), calibrated on --calibration photos")
    parser.add_argument("--calibration", type=Path, default=None, metavar="DIR",
                        help="--int8: folder of photos like the training photos (searched recursively)")
    parser.add_argument("--calibration-photos", type=int, default=None, metavar="N",
                        help="--int8: use N photos spread evenly over the folder (default: 300)")
    parser.add_argument("--auto-precision", choices=["fp32", "bf16", "int8"], default=None,
                        help="safetensors: record the precision that --precision auto runs this model in "
                        "(only after measuring that it keeps the quality: benchmarks/precision.py)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.set_defaults(func=run)


def set_temperature(net: "torch.nn.Module", spec: "ModelSpec", temperature: float, source: str) -> None:
    """Make T the model's own decoding temperature, in the network and in its spec."""
    from chromalab.errors import ChromalabError

    if not hasattr(net, "temperature"):
        raise ChromalabError(f"{source}: --temperature is for classification models; this is a {spec.name}")
    if not math.isfinite(temperature) or temperature < 0:
        raise ChromalabError(f"--temperature {temperature}: must be 0 (the mode) or positive")
    net.temperature = temperature
    spec.kwargs["temperature"] = temperature


def run(args: argparse.Namespace) -> int:
    import torch

    from chromalab.atomic import atomic_target
    from chromalab.checkpoint import load_network, resolve_model_path, save_network
    from chromalab.data.images import check_writable_folder
    from chromalab.errors import ChromalabError
    from chromalab.inference.onnx_backend import OnnxBackend, export_onnx

    out = Path(args.out)
    if out.exists() and out.resolve() == resolve_model_path(args.model).resolve():
        raise ChromalabError(f"{out}: refusing to overwrite the model being exported")
    if out.is_dir():
        raise ChromalabError(f"{out}: is a folder; --out names the file to write")
    if out.exists() and not args.overwrite:
        raise ChromalabError(f"{out}: exists (use --overwrite to replace it)")
    net, spec = load_network(args.model)
    if args.temperature is not None:
        set_temperature(net, spec, args.temperature, args.model)
    if args.saturation is not None:
        if not math.isfinite(args.saturation) or args.saturation <= 0:
            raise ChromalabError(f"--saturation {args.saturation}: must be positive (1 = as trained)")
        if args.format != "safetensors":
            raise ChromalabError("--saturation is stored in a safetensors model's spec; the ONNX graph "
                                 "holds the network alone (the Colorizer applies the spec's saturation)")
        spec.extra["saturation"] = args.saturation
    if args.smoothing is not None:
        if args.format != "safetensors":
            raise ChromalabError("--smoothing is stored in a safetensors model's spec; the ONNX graph "
                                 "holds the network alone")
        from chromalab.inference.smoothing import parse_smoothing

        smoothing = parse_smoothing(args.smoothing)
        spec.extra.pop("chroma_smoothing", None)
        if smoothing is not None:
            spec.extra["chroma_smoothing"] = smoothing.to_dict()
    if args.auto_precision is not None:
        if args.format != "safetensors":
            raise ChromalabError("--auto-precision is stored in a safetensors model's spec")
        spec.extra["auto_precision"] = args.auto_precision
    if args.int8 and (args.format != "onnx" or args.calibration is None):
        raise ChromalabError("--int8 makes an ONNX graph and needs --calibration DIR (photos like the training photos)")
    check_writable_folder(out.parent)  # only now: a refused command leaves no new folder behind
    if args.format == "safetensors":
        save_network(net, spec, out, half=args.half, overwrite=args.overwrite)
        print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
        return 0
    # Sizes that are multiples of 64 need no padding, in PyTorch or ONNX (see OnnxBackend).
    probe = torch.rand(2, 1, 64, 128, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        expected = net.predict(probe)
    # Checked before it replaces anything: a failed export leaves an existing --out as it was.
    with atomic_target(out, replace=args.overwrite) as temporary:
        export_onnx(net, temporary, size=args.size or spec.size)
        difference = (OnnxBackend(temporary)(probe) - expected).abs().max().item()
        if difference >= 1e-2:
            raise ChromalabError(f"{out}: ONNX output differs from PyTorch by {difference:.3g}; not kept")
    if args.int8:
        return quantize_export(out, args, size=args.size or spec.size)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB); max |difference| vs PyTorch {difference:.2e}")
    return 0


def quantize_export(fp32_graph: Path, args: argparse.Namespace, size: int) -> int:
    """Replace the fp32 graph just written at --out by its int8 quantization."""
    from chromalab.data.folder import list_images
    from chromalab.errors import ChromalabError
    from chromalab.inference.precision import CALIBRATION_PHOTOS, quantize_int8

    if not args.calibration.is_dir():
        raise ChromalabError(f"{args.calibration}: not a folder of photos")
    photos = list_images(args.calibration)
    wanted = args.calibration_photos or CALIBRATION_PHOTOS
    if wanted <= 0:
        raise ChromalabError(f"--calibration-photos {wanted}: must be positive")
    stride = max(1, len(photos) // wanted)  # evenly spread: every class of a sorted folder
    chosen = photos[::stride][:wanted]
    if not chosen:
        raise ChromalabError(f"{args.calibration}: no photos found")
    quantize_int8(fp32_graph, fp32_graph, chosen, size)
    print(f"wrote {fp32_graph} ({fp32_graph.stat().st_size / 1e6:.1f} MB): int8 QDQ, calibrated on "
          f"{len(chosen)} photos of {args.calibration}")
    return 0
