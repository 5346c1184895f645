"""Parameter counts and CPU speed of the generators, discriminators and perceptual losses.

    .venv/bin/python benchmarks/gan_zoo.py [--size 128] [--batch 8] [--threads 2] [--repeats 3]

Prints, per network: parameters, forward time (eval, no grad) and, for discriminators, the
time of one pix2pix training step (D step + G step with a U-Net generator) at that size.
Times are medians of ``--repeats`` runs after one warm-up run, in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

from chromalab.losses.adversarial import discriminator_loss, generator_loss
from chromalab.losses.perceptual import make_perceptual_loss
from chromalab.models.discriminators import DISCRIMINATORS, create_discriminator
from chromalab.models.registry import count_parameters, create_model

GENERATORS: list[tuple[str, str, dict]] = [
    ("convnet", "convnet", {}),
    ("resnet (6 blocks)", "resnet", {}),
    ("unet", "unet", {}),
    ("unet + criss-cross", "unet", {"attention": "criss-cross"}),
    ("unet-tiny", "unet-tiny", {}),
]


def median_ms(run: Callable[[], object], repeats: int) -> float:
    run()  # warm-up: allocator, one-time kernels
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    size, batch = args.size, args.batch
    l_norm = torch.rand(batch, 1, size, size) * 2 - 1
    print(f"CPU, {args.threads} threads, batch {batch} at {size}x{size}; times in ms (median of {args.repeats})")

    print(f"\n{'generator':<22}{'params':>12}{'forward':>10}")
    for label, name, kwargs in GENERATORS:
        net = create_model(name, **kwargs).eval()
        with torch.no_grad():
            ms = median_ms(lambda: net(l_norm), args.repeats)
        print(f"{label:<22}{count_parameters(net):>12,}{ms:>10.0f}")

    print(f"\n{'discriminator (Lab)':<22}{'params':>12}{'forward':>10}{'GAN step':>10}")
    generator = create_model("unet")
    target = torch.rand(batch, 2, size, size) * 0.6 - 0.3
    for name in DISCRIMINATORS:
        disc = create_discriminator(name, 3)
        opt_g = torch.optim.Adam(generator.parameters(), 2e-4)
        opt_d = torch.optim.Adam(disc.parameters(), 2e-4)

        def step() -> None:
            fake = generator(l_norm)
            d_loss = discriminator_loss(
                "lsgan", disc(torch.cat([l_norm, target], 1)), disc(torch.cat([l_norm, fake.detach()], 1))
            )
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            g_loss = generator_loss("lsgan", disc(torch.cat([l_norm, fake], 1))) + 100 * (fake - target).abs().mean()
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()

        disc.eval()
        with torch.no_grad():
            forward = median_ms(lambda: disc(torch.cat([l_norm, target], 1)), args.repeats)
        disc.train()
        print(f"{name:<22}{count_parameters(disc):>12,}{forward:>10.0f}{median_ms(step, args.repeats):>10.0f}")

    print(f"\n{'perceptual loss':<22}{'frozen params':>14}{'loss+grad':>10}")
    rgb_true = torch.rand(batch, 3, size, size)
    for name in ("effnet", "stlpips", "stlpips-vgg"):
        try:
            loss = make_perceptual_loss(name)
        except Exception as error:  # the optional extra may be missing
            print(f"{name:<22}  unavailable: {error}")
            continue

        def loss_and_grad() -> None:
            prediction = rgb_true.flip(-1).requires_grad_(True)
            loss(prediction, rgb_true).backward()

        frozen = sum(p.numel() for p in loss.parameters())
        print(f"{name:<22}{frozen:>14,}{median_ms(loss_and_grad, args.repeats):>10.0f}")


if __name__ == "__main__":
    main()
