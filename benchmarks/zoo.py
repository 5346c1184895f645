"""The model zoo at a glance: size, compute and speed of every registered model.

    nice -n 10 .venv/bin/python benchmarks/zoo.py [--models a,b] [--threads N] [--precision 32-true|bf16-mixed|auto] [--out table.md]

For each model (default constructor options, lab unless the model's own color space):

* parameters;
* GFLOPs of one network pass on one 256x256 photo, and of one full ``predict`` (the same
  except for diffusion, whose ``predict`` runs the denoiser once per sampling step), counted
  with torch.utils.flop_counter.FlopCounterMode (a multiply-add counts as 2 FLOPs);
* training images/s at 128 px, batch 8: optimizer steps of the model's *own* objective
  (regression, variational, diffusion, classification, ...) in a Lightning Trainer, timed
  after warm-up steps;
* inference images/s at 256 px, batch 8, through ``predict`` (diffusion: its default
  sampler, DDIM with 50 steps).

Prints a Markdown table (and writes it to --out if given). Timings depend on the machine and
on what else runs on it; the FLOPs and parameters do not.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from rich.progress import Progress
from torch.utils.flop_counter import FlopCounterMode

from chromalab.color import rgb_to_l_norm
from chromalab.models import count_parameters, list_models
from chromalab.training.config import TrainConfig
from chromalab.training.objective import ColorizationObjective, objective_class


class StepTimer(L.Callback):
    """Wall time of every training batch (forward, backward, optimizer step)."""

    def __init__(self) -> None:
        self.durations: list[float] = []
        self._start = 0.0

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.durations.append(time.perf_counter() - self._start)


def build_objective(name: str, size: int, batch_size: int) -> ColorizationObjective:
    from chromalab.models import model_entry

    config = TrainConfig.from_dict({
        "model": {"name": name},
        "data": {"size": size, "batch_size": batch_size, "workers": 0},
        "optim": {"warmup_steps": 0},
    })
    return objective_class(model_entry(name).objective)(config.to_dict())


def random_photos(count: int, size: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, 3, size, size), dtype=torch.uint8, generator=generator)


def count_flops(fn: Any) -> float:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn()
    return counter.get_total_flops() / 1e9


def network_pass_flops(objective: ColorizationObjective, size: int) -> float:
    """One forward of the network as its objective calls it (diffusion: one denoiser step)."""
    net = objective.net.eval()
    l_norm = torch.zeros(1, 1, size, size)
    if hasattr(net, "noise_scheduler"):  # diffusion: the denoiser at the chroma grid
        padded, _ = net.pad(l_norm)
        noisy = torch.zeros(1, net.out_channels, *net.chroma_grid(*padded.shape[-2:]))
        return count_flops(lambda: net(noisy, padded, torch.tensor([500])))
    return count_flops(lambda: net.predict(l_norm))


def predict_flops(objective: ColorizationObjective, size: int) -> float:
    net = objective.net.eval()
    return count_flops(lambda: net.predict(torch.zeros(1, 1, size, size), generator=torch.Generator().manual_seed(0)))


def training_speed(objective: ColorizationObjective, size: int, batch: int, warmup: int, steps: int,
                   precision: str = "32-true") -> float:
    """Images/s of Lightning's training steps in ``precision`` (after ``warmup`` untimed ones)."""
    photos = random_photos(batch, size)
    loader = torch.utils.data.DataLoader([photos] * (warmup + steps), batch_size=None)
    timer = StepTimer()
    trainer = L.Trainer(
        max_steps=warmup + steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        limit_val_batches=0, callbacks=[timer], precision=precision,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(objective, train_dataloaders=loader)
    timed = timer.durations[warmup:]
    return batch * len(timed) / sum(timed)


@torch.no_grad()
def inference_speed(objective: ColorizationObjective, size: int, batch: int, repeats: int) -> float:
    net = objective.net.eval()
    l_norm = rgb_to_l_norm(random_photos(batch, size, seed=1).float() / 255)
    net.predict(l_norm, generator=torch.Generator().manual_seed(0))  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        net.predict(l_norm, generator=torch.Generator().manual_seed(0))
    return batch * repeats / (time.perf_counter() - start)


def describe_sampling(objective: ColorizationObjective) -> str:
    net = objective.net
    if hasattr(net, "noise_scheduler"):
        return f"{net.sampler.upper()} {net.steps} steps"
    return "1 pass"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=None, help="comma-separated names (default: all registered)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--train-size", type=int, default=128)
    parser.add_argument("--infer-size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2, help="untimed training steps")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps")
    parser.add_argument("--precision", default="32-true",
                        help="training precision: 32-true, bf16-mixed or auto (bf16 where the CPU has the units)")
    parser.add_argument("--out", default=None, help="also write the Markdown table here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from chromalab.precision import resolve_precision

    precision = resolve_precision(args.precision, "cpu")
    names = args.models.split(",") if args.models else [entry.name for entry in list_models()]
    entries = {entry.name: entry for entry in list_models()}

    header = (
        f"| model | objective | color space | params (M) | GFLOPs/pass @{args.infer_size} "
        f"| GFLOPs/predict @{args.infer_size} | predict | train img/s @{args.train_size} ({precision}) "
        f"| infer img/s @{args.infer_size} |"
    )
    lines = [header, "|" + "---|" * 9]
    with Progress() as progress:
        task = progress.add_task("benchmarking", total=len(names))
        for name in names:
            progress.update(task, description=f"benchmarking {name}")
            entry = entries[name]
            try:
                torch.manual_seed(0)
                objective = build_objective(name, args.train_size, args.batch)
                params = count_parameters(objective.net) / 1e6
                pass_flops = network_pass_flops(objective, args.infer_size)
                full_flops = predict_flops(objective, args.infer_size)
                train = training_speed(objective, args.train_size, args.batch, args.warmup, args.steps, precision)
                slow = hasattr(objective.net, "noise_scheduler")
                infer = inference_speed(objective, args.infer_size, args.batch, 1 if slow else 3)
                lines.append(
                    f"| {name} | {entry.objective} | {objective.spec.color_space} | {params:.2f} | {pass_flops:.2f} "
                    f"| {full_flops:.1f} | {describe_sampling(objective)} | {train:.1f} | {infer:.2f} |"
                )
            except Exception as error:  # one broken model must not hide the others
                lines.append(f"| {name} | {entry.objective} | {entry.color_space} | error: {str(error).splitlines()[0][:80]} |||||||")
            progress.advance(task)
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()
