"""chromalab train --data DIR --model NAME ... [--config X.yaml] [--set path=value]"""

from __future__ import annotations

import argparse
import os

# Command-line flag -> dotted config path. Flags given override the YAML file.
FLAGS: dict[str, tuple[str, type, str]] = {
    "data": ("data.path", str, "photo folder (recursive)"),
    "model": ("model.name", str, "model name (see `chromalab models`)"),
    "color_space": ("model.color_space", str, "lab, rgb, yuv, ycbcr or hsv"),
    "init_from": ("model.init_from", str, "fine-tune: start from this model's weights (run, file or 'default')"),
    "loss": ("loss.pixel", str, "l1, l2, huber or l1+l2"),
    "huber_delta": ("loss.huber_delta", float, "Huber delta (normalized units)"),
    "loss_space": ("loss.space", str, "native or rgb: where the pixel loss is computed"),
    "perceptual": ("loss.perceptual", str, "add a perceptual loss: stlpips or effnet"),
    "size": ("data.size", int, "training crop size"),
    "batch_size": ("data.batch_size", int, "batch size (per device)"),
    "val_fraction": ("data.val_fraction", float, "fraction of photos held out for validation"),
    "workers": ("data.workers", int, "DataLoader worker processes"),
    "limit": ("data.limit", int, "use at most this many training photos"),
    "epochs": ("trainer.epochs", int, "epochs"),
    "max_steps": ("trainer.max_steps", int, "stop after this many optimizer steps"),
    "max_time": ("trainer.max_time", str, "stop after this wall-clock time, DD:HH:MM:SS"),
    "lr": ("optim.lr", float, "peak learning rate (AdamW)"),
    "weight_decay": ("optim.weight_decay", float, "AdamW weight decay"),
    "warmup_steps": ("optim.warmup_steps", int, "linear warm-up steps before cosine decay"),
    "grad_clip": ("optim.grad_clip", float, "gradient-norm clipping"),
    "patience": ("trainer.patience", int, "early stopping after N validations without improvement"),
    "seed": ("seed", int, "random seed (also the split's seed unless data.seed is set)"),
    "out": ("out", str, "run folder"),
    "accelerator": ("trainer.accelerator", str, "cpu, gpu, auto ... (Lightning)"),
    "devices": ("trainer.devices", str, "devices per node, e.g. 2 or auto (Lightning)"),
    "num_nodes": ("trainer.num_nodes", int, "nodes (Lightning)"),
    "strategy": ("trainer.strategy", str, "auto, ddp, ddp_spawn ... (Lightning)"),
    "precision": ("trainer.precision", str, "auto (bf16-mixed where the CPU or GPU has bf16 units, else 32-true), 32-true, bf16-mixed (Lightning)"),
    "val_every": ("trainer.val_every", float, "validate every N epochs, or a fraction of one"),
    "discriminator": ("gan.discriminator", str, "GAN discriminator: patch, pixel, critic, multiscale, unet"),
    "gan_loss": ("gan.loss", str, "GAN loss: vanilla, lsgan, wgan-gp, hinge"),
    "l1_weight": ("gan.l1_weight", float, "weight of the L1 term in the GAN generator loss"),
    "sampler": ("diffusion.sampler", str, "diffusion sampler: ddpm or ddim"),
    "steps": ("diffusion.steps", int, "diffusion sampling steps"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train a colorization model on a photo folder",
        description="Train a model. Options come from --config (YAML), then the flags below, "
        "then --set path=value; the resolved configuration is saved in the run folder.",
    )
    parser.add_argument("--config", help="YAML experiment file (see configs/)")
    for flag, (path, kind, text) in FLAGS.items():
        parser.add_argument(f"--{flag.replace('_', '-')}", dest=flag, type=kind, default=None,
                            help=f"{text} [{path}]")
    parser.add_argument("--attention", dest="attention", default=None,
                        help="U-Net attention blocks, e.g. criss-cross [model.kwargs.attention]")
    parser.add_argument("--cache", action="store_true", default=None, help="cache decoded photos (memory-mapped)")
    parser.add_argument("--mood-augment", action="store_true", default=None, help="hue-shifted training targets")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                        help="any config option, e.g. --set model.kwargs.width=64 (repeatable)")
    parser.add_argument("--resume", nargs="?", const="last", default=None, metavar="RUN",
                        help="continue a run folder (or a .ckpt inside one) with its own recipe from its "
                        "config.yaml; only --epochs/--max-steps (longer), --max-time, --patience, "
                        "--workers, --cache, validation, logging and --accelerator may change")
    parser.set_defaults(func=run)


# An option as the user gave it: (how it reads on the command line, dotted config path, value).
Override = tuple[str, str, object]


def requested_overrides(args: argparse.Namespace) -> list[Override]:
    """The options given on the command line, in the order they apply (flags, then --set)."""
    from chromalab.errors import ChromalabError

    overrides: list[Override] = []
    for flag, (path, _, _) in FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            overrides.append((f"--{flag.replace('_', '-')}", path, value))
    if args.seed is not None:  # the split's seed follows the run's seed
        overrides.append(("--seed", "data.seed", args.seed))
    if args.attention is not None:
        overrides.append(("--attention", "model.kwargs.attention", args.attention))
    if args.cache:
        overrides.append(("--cache", "data.cache", True))
    if args.mood_augment:
        overrides.append(("--mood-augment", "data.mood_augment", True))
    if args.no_progress:
        overrides.append(("--no-progress", "trainer.progress", False))
    for item in args.set:
        if "=" not in item:
            raise ChromalabError(f"--set {item!r}: expected PATH=VALUE")
        path, value = item.split("=", 1)
        overrides.append((f"--set {path.strip()}", path.strip(), value))
    return overrides


def resolve_config(args: argparse.Namespace):  # -> TrainConfig
    from chromalab.training.config import TrainConfig

    config = TrainConfig.from_yaml(args.config) if args.config else TrainConfig()
    for _, path, value in requested_overrides(args):
        config.set(path, value)
    return config


def resume_config(args: argparse.Namespace):  # -> tuple[TrainConfig, checkpoint path]
    """The run's own recipe, with the flags that may change on a resume; one line for any other."""
    from pathlib import Path

    from chromalab.errors import ChromalabError
    from chromalab.training.resume import find_run, recipe_changes, trained_config

    overrides = requested_overrides(args)
    given_out = next((value for label, _, value in overrides if label == "--out"), None)
    if args.resume == "last":  # bare --resume: the run named by --out
        if given_out is None:
            raise ChromalabError("--resume needs the run: give --resume RUN_FOLDER (or --out RUN_FOLDER)")
        args.resume = given_out
    run, checkpoint = find_run(args.resume)
    if args.config:
        raise ChromalabError(f"--config {args.config}: a resumed run follows its own {run / 'config.yaml'}; "
                             f"start a new run with --init-from {run} to train another recipe")
    if given_out is not None and Path(str(given_out)).resolve() != run.resolve():
        raise ChromalabError(f"--out {given_out}: a resumed run continues in its own folder {run}")
    trained, config = trained_config(run), trained_config(run)
    for label, path, value in overrides:
        if path == "out" or (path == "data.path" and Path(str(value)).resolve() == Path(trained.data.path).resolve()):
            continue  # the run's own folder and data, however they are written
        config.set(path, value)
        # The options before this one kept the recipe, so a change now is this option's.
        changes = recipe_changes(trained, config)
        if changes:
            raise ChromalabError(changes[0].message(run, option=label))
    data = config.data.path
    if data and not Path(data).exists() and not any(c in data for c in "{*"):
        raise ChromalabError(f"{run / 'config.yaml'}: its data {data} is not here; a relative path is read from "
                             "the folder the run was started in: resume from there")
    return config, checkpoint


def run(args: argparse.Namespace) -> int:
    import sys

    from chromalab.training.termination import TerminationWatch
    from chromalab.training.trainer import train

    checkpoint = None
    if args.resume:
        config, checkpoint = resume_config(args)
    else:
        config = resolve_config(args)
    # Ctrl+C, `kill` or `pkill -f` (which also kills the DataLoader workers, so fit() fails with
    # "worker killed"): one line that says how to continue, not an error.
    # The watch stays installed while an error is handled: the process group's SIGTERM can reach
    # a DataLoader worker (whose death fit() reports) before it reaches this process.
    with TerminationWatch() as watch:
        try:
            run_dir = train(config, resume=str(checkpoint) if checkpoint else None)
        except (KeyboardInterrupt, SystemExit):
            watch.quiet()
            return _interrupted(config, sys.stderr)
        except Exception as error:
            watch.quiet()
            if watch.is_stop(error):
                return _interrupted(config, sys.stderr)
            raise
    if os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0":
        return 0  # DDP worker processes: rank 0 reports
    print(f"training finished: model {run_dir / 'model.safetensors'}, samples {run_dir / 'samples'}, "
          f"logs {run_dir / 'logs'}")
    return 0


def _interrupted(config, stream) -> int:  # noqa: ANN001 — TrainConfig, a text stream
    from pathlib import Path

    run = Path(config.out) if config.out else None
    if run is not None and (run / "checkpoints" / "last.ckpt").is_file():
        print(f"chromalab train: interrupted; continue with: chromalab train --resume {run}", file=stream)
    else:
        print("chromalab train: interrupted before the first checkpoint (nothing to resume)", file=stream)
    return 130
