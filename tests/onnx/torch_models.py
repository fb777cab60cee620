"""Small ``torch.nn`` models covering what real CNNs are built from, for the PyTorch -> ONNX -> Caffe tests.

Every model is built by :func:`build` in ``eval()`` mode with seeded, realistic parameters
(:func:`realistic_init`): convolution/linear weights keep PyTorch's default Kaiming-uniform draw, BatchNorm
layers get ``running_var ~ U(0.5, 1.5)``, ``running_mean ~ N(0, 0.2)``, ``weight ~ U(0.5, 1.5)``,
``bias ~ N(0, 0.1)``, PReLU slopes ``~ U(0.1, 0.4)``. Inputs are ``N(0, 1)``, batch 2 (so that a flatten
that loses the batch axis is caught).

The zoo (name -> what it covers):

- ``plain``: conv/BatchNorm/ReLU, MaxPool with ``ceil_mode`` True (where floor would differ)
  and False (where the windows fit exactly), AvgPool with
  padding, ``x.view(x.size(0), -1)``, Linear, Dropout (eval), Softmax;
- ``mobilenet``: strided conv + ``nn.ReLU6``, depthwise 3x3 + ``F.hardtanh(0, 6)``, pointwise conv,
  residual add (inverted residual), adaptive average pool to 1, ``torch.flatten``, Linear;
- ``inception``: four concatenated branches (1x1, 3x3, 5x5, MaxPool 3/1/1 + 1x1), grouped conv, PReLU,
  LeakyReLU, two outputs (softmax head and features);
- ``se``: squeeze-and-excitation twice: global pool + two Linears + sigmoid + broadcast multiply, and
  adaptive pool + two 1x1 convs + sigmoid + multiply;
- ``decoder``: ConvTranspose2d (stride 2), ``nn.Upsample(scale_factor=2, mode="nearest")``, skip add;
- ``mlp``: Linear + BatchNorm1d + ReLU + Linear + Softmax on ``(N, F)`` input;
- ``resnet_stem``: torchvision's ResNet stem (7x7/2 conv, MaxPool 3/2/1 in floor mode on an even size,
  where Caffe's always-ceil pooling would give one more row and column) and a basic residual block;
- ``clamp``: ``torch.clamp(-1, 1)`` (a general Clip) and a MAX pooling as the graph output;
- ``mobilenet_v3``: ``nn.Hardswish`` and a squeeze-excite block gated by ``nn.Hardsigmoid``;
- ``cbam``: channel attention (avg + max pooled, shared MLP, (N, C, 1, 1) gate) and spatial attention
  (channel mean and max, 7x7 conv, sigmoid, an (N, 1, H, W) map times the (N, C, H, W) features);
- ``two_inputs``: inputs ``data`` and ``aux``, outputs ``sum`` and ``cat``;
- ``unsupported``: ``torch.atan`` after a conv, then ``torch.cumsum``: Caffe can express neither.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]


class Plain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, ceil_mode=True),                  # 30 -> 15 (floor would give 14)
            *conv_bn(16, 24, 3), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, ceil_mode=False),                 # 15 -> 7 (windows fit exactly)
            nn.AvgPool2d(3, 2, padding=1),                       # 7 -> 4, divisor counts the padding
        )
        self.classifier = nn.Sequential(nn.Linear(24 * 4 * 4, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = x.view(x.size(0), -1)
        return F.softmax(self.classifier(x), dim=1)


class InvertedResidual(nn.Module):
    def __init__(self, c: int, expand: int) -> None:
        super().__init__()
        hidden = c * expand
        self.expand = nn.Sequential(*conv_bn(c, hidden, 1), nn.ReLU6(inplace=True))
        self.dw = nn.Sequential(*conv_bn(hidden, hidden, 3, groups=hidden))
        self.project = nn.Sequential(*conv_bn(hidden, c, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x)
        y = F.hardtanh(self.dw(y), 0.0, 6.0)
        return x + self.project(y)


class MobileNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(*conv_bn(3, 16, 3, stride=2), nn.ReLU6(inplace=True))
        self.dw = nn.Sequential(*conv_bn(16, 16, 3, groups=16), nn.ReLU6(inplace=True), *conv_bn(16, 24, 1),
                                nn.ReLU6(inplace=True))
        self.block = InvertedResidual(24, 4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(24, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block(self.dw(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


class Inception(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.PReLU(16))
        self.b1 = nn.Conv2d(16, 8, 1)
        self.b3 = nn.Sequential(nn.Conv2d(16, 8, 1), nn.ReLU(), nn.Conv2d(8, 12, 3, padding=1))
        self.b5 = nn.Sequential(nn.Conv2d(16, 4, 1), nn.ReLU(), nn.Conv2d(4, 8, 5, padding=2))
        self.bp = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(16, 4, 1))
        self.group = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1, groups=4), nn.LeakyReLU(0.1))
        self.head = nn.Conv2d(32, 5, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(x)
        x = torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], dim=1)
        feat = self.group(F.relu(x))
        return F.softmax(self.head(feat), dim=1), feat


class SqueezeExcite(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(*conv_bn(3, 32, 3), nn.ReLU())
        self.fc1, self.fc2 = nn.Linear(32, 8), nn.Linear(8, 32)
        self.conv2 = nn.Sequential(*conv_bn(32, 32, 3, stride=2), nn.ReLU())
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(32, 8, 1), nn.ReLU(), nn.Conv2d(8, 32, 1),
                                nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        n, c = x.shape[0], x.shape[1]
        s = F.adaptive_avg_pool2d(x, 1).view(n, c)
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(s))))
        x = self.conv2(x * s.view(n, c, 1, 1))
        return x * self.se(x)


class Decoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Sequential(*conv_bn(3, 16, 3, stride=2), nn.ReLU())
        self.deconv = nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.lateral = nn.Conv2d(16, 8, 1)
        self.out = nn.Conv2d(8, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.down(x)
        z = F.relu(self.deconv(y)) + self.up(self.lateral(y))
        return self.out(z)


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(20, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 6),
                                 nn.Softmax(dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BasicBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*conv_bn(c, c, 3), nn.ReLU(inplace=True), *conv_bn(c, c, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class ResNetStem(nn.Module):
    """torchvision's ResNet stem: MaxPool2d(3, 2, 1) in floor mode on an even size (Caffe would ceil)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 7, 2, 3, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
                                  nn.MaxPool2d(3, 2, 1))          # 16 -> 8 (Caffe's ceil: 9)
        self.layer1 = BasicBlock(16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer1(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class Clamp(nn.Module):
    """A general clamp (not ReLU6) between convolutions, and a MAX pooling as the graph output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(*conv_bn(3, 8, 3))
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.clamp(self.conv1(x), -1.0, 1.0)
        return F.max_pool2d(self.conv2(y), 2, 2)


class MobileNetV3Block(nn.Module):
    """torchvision's MobileNetV3 ingredients: Hardswish, and squeeze-excite gated by Hardsigmoid."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(*conv_bn(3, 16, 3, stride=2), nn.Hardswish())
        self.dw = nn.Sequential(*conv_bn(16, 16, 3, groups=16), nn.Hardswish())
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(16, 8, 1), nn.ReLU(), nn.Conv2d(8, 16, 1),
                                nn.Hardsigmoid())
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dw(self.stem(x))
        y = y * self.se(y)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))


class CBAM(nn.Module):
    """CBAM (Woo et al. 2018): channel attention (avg- and max-pooled descriptors through a shared MLP,
    sigmoid, (N, C, 1, 1) multiply), then spatial attention (channel mean and max, 7x7 conv, sigmoid,
    (N, 1, H, W) multiply)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(*conv_bn(3, 16, 3), nn.ReLU())
        self.mlp = nn.Sequential(nn.Conv2d(16, 4, 1), nn.ReLU(), nn.Conv2d(4, 16, 1))
        self.spatial = nn.Conv2d(2, 1, 7, padding=3)
        self.head = nn.Conv2d(16, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(x)
        gate = torch.sigmoid(self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1)))
        x = x * gate
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
        x = x * torch.sigmoid(self.spatial(pooled))
        return self.head(x)


class Unsupported(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.atan(self.conv(x))
        return torch.cumsum(y, dim=1)


class TwoInputs(nn.Module):
    """Two inputs, two outputs: an image branch and an auxiliary branch, summed and concatenated."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential(*conv_bn(3, 8, 3), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.Sigmoid())

    def forward(self, image: torch.Tensor, aux: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u, v = self.a(image), self.b(aux)
        return u + v, torch.cat([u, v], 1)


@dataclass(frozen=True)
class ZooEntry:
    factory: Callable[[], nn.Module]
    input_shape: tuple[int, ...]
    outputs: tuple[str, ...] = ("prob",)
    more_inputs: tuple[tuple[str, tuple[int, ...]], ...] = ()  # (name, shape) after the first input "data"


ZOO: dict[str, ZooEntry] = {
    "plain": ZooEntry(Plain, (2, 3, 30, 30)),
    "mobilenet": ZooEntry(MobileNet, (2, 3, 32, 32)),
    "inception": ZooEntry(Inception, (2, 3, 12, 12), ("prob", "feat")),
    "se": ZooEntry(SqueezeExcite, (2, 3, 16, 16)),
    "decoder": ZooEntry(Decoder, (2, 3, 16, 16)),
    "mlp": ZooEntry(MLP, (2, 20)),
    "resnet_stem": ZooEntry(ResNetStem, (2, 3, 32, 32)),
    "clamp": ZooEntry(Clamp, (2, 3, 12, 12)),
    "two_inputs": ZooEntry(TwoInputs, (2, 3, 8, 8), ("sum", "cat"), (("aux", (2, 1, 8, 8)),)),
    "mobilenet_v3": ZooEntry(MobileNetV3Block, (2, 3, 16, 16)),
    "cbam": ZooEntry(CBAM, (2, 3, 12, 12)),
    "unsupported": ZooEntry(Unsupported, (1, 3, 8, 8)),
}


def realistic_init(model: nn.Module, seed: int) -> None:
    """Give BatchNorm and PReLU layers realistic, seeded statistics (see the module docstring)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                c = module.num_features
                assert module.running_var is not None and module.running_mean is not None
                module.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
                module.running_mean.copy_(torch.randn(c, generator=gen) * 0.2)
                module.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(c, generator=gen) * 0.1)
            elif isinstance(module, nn.PReLU):
                module.weight.copy_(torch.rand(module.weight.shape, generator=gen) * 0.3 + 0.1)


def build(name: str, seed: int = 0) -> tuple[nn.Module, list[torch.Tensor]]:
    """(model in eval mode with realistic parameters, seeded N(0, 1) inputs) for zoo entry ``name``."""
    entry = ZOO[name]
    torch.manual_seed(seed)
    model = entry.factory()
    realistic_init(model, seed)
    model.eval()
    gen = torch.Generator().manual_seed(seed + 1)
    shapes = [entry.input_shape, *(shape for _, shape in entry.more_inputs)]
    return model, [torch.randn(shape, generator=gen) for shape in shapes]
