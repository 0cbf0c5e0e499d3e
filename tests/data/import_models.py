"""Our own PyTorch models for `cnncalc import`: each names the pattern it covers. Plain torch;
the tests import them by file path (tests/data/import_models.py:NAME) as a user would."""
import torch
import torch.nn.functional as F
from torch import nn


class Bottleneck(nn.Module):
    """Residual block; a 1x1 projection shortcut where the shape changes."""

    def __init__(self, cin, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != planes * 4:
            self.downsample = nn.Sequential(nn.Conv2d(cin, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4))

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(Bottleneck(16, 8), Bottleneck(32, 8), Bottleneck(32, 8))
        self.layer2 = nn.Sequential(Bottleneck(32, 16, 2), Bottleneck(64, 16))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class SqueezeExcite(nn.Module):
    """x * s with s = sigmoid(fc2(relu(fc1(pool(x))))), a (N, C, 1, 1) gate."""

    def __init__(self, c, r=4):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(c, c // r, 1)
        self.fc2 = nn.Conv2d(c // r, c, 1)

    def forward(self, x):
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(self.pool(x)))))
        return x * s


class SE(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 3, 2, 1)
        self.blocks = nn.Sequential(*[nn.Sequential(nn.Conv2d(32, 32, 3, 1, 1), nn.ReLU(), SqueezeExcite(32))
                                      for _ in range(3)])
        self.head = nn.Linear(32, 5)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


class Inception(nn.Module):
    """Parallel branches concatenated along the channels."""

    def __init__(self, cin, c1, c3r, c3, c5r, c5, pool):
        super().__init__()
        self.b1 = nn.Conv2d(cin, c1, 1)
        self.b2 = nn.Sequential(nn.Conv2d(cin, c3r, 1), nn.ReLU(), nn.Conv2d(c3r, c3, 3, padding=1))
        self.b3 = nn.Sequential(nn.Conv2d(cin, c5r, 1), nn.ReLU(), nn.Conv2d(c5r, c5, 5, padding=2))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(cin, pool, 1))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


class InceptionNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 3, padding=1)
        self.mixed_a = Inception(32, 16, 16, 24, 4, 8, 8)
        self.mixed_b = Inception(56, 24, 24, 32, 8, 12, 12)
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(80, 10)

    def forward(self, x):
        x = self.mixed_b(self.mixed_a(F.relu(self.stem(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


def double_conv(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class UNet(nn.Module):
    """Encoder-decoder: transposed convs up, skip connections concatenated."""

    def __init__(self):
        super().__init__()
        self.enc1, self.enc2, self.enc3 = double_conv(3, 8), double_conv(8, 16), double_conv(16, 32)
        self.pool = nn.MaxPool2d(2)
        self.up2 = nn.ConvTranspose2d(32, 16, 2, stride=2)
        self.dec2 = double_conv(32, 16)
        self.up1 = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.dec1 = double_conv(16, 8)
        self.out = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        e3 = self.enc3(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up2(e3), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        return self.out(d1)


class Dilated1d(nn.Module):
    """1-D convolutions with growing dilation (a WaveNet-like stack)."""

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(*[nn.Sequential(nn.Conv1d(16 if d > 1 else 1, 16, 3, dilation=d, padding=d),
                                                    nn.BatchNorm1d(16), nn.ReLU()) for d in (1, 2, 4, 8)])
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        return self.fc(self.pool(self.layers(x)).flatten(1))


class DepthwiseSeparable(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False)
        self.bn1 = nn.BatchNorm2d(cin)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act = nn.ReLU6(inplace=True)

    def forward(self, x):
        return self.act(self.bn2(self.pointwise(self.act(self.bn1(self.depthwise(x))))))


class Separable(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, 2, 1, bias=False)
        widths = [(16, 32, 1), (32, 64, 2), (64, 64, 1), (64, 128, 2), (128, 128, 1)]
        self.features = nn.Sequential(*[DepthwiseSeparable(*w) for w in widths])
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(128, 10))

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.features(self.stem(x)), 1)
        return self.classifier(torch.flatten(x, 1))


class Functional(nn.Module):
    """Functional ops between modules: F.relu, F.max_pool2d, x + y, torch.cat, view, flatten."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.c = nn.Conv2d(8, 8, 1)
        self.fc1 = nn.Linear(16 * 8 * 8, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.a(x)), 2)
        y = F.relu(self.b(x)) + self.c(x)
        z = torch.cat((x, y), 1)
        z = F.avg_pool2d(z, kernel_size=2, stride=2)
        z = z.view(z.size(0), -1)
        return self.fc2(F.relu(self.fc1(z)))


class Shared(nn.Module):
    """One module called twice: its weights are shared (share:)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.stem = nn.Conv2d(3, 8, 1)

    def forward(self, x):
        x = self.stem(x)
        return self.conv(F.relu(self.conv(x)))


class TwoHeads(nn.Module):
    """Returns a tuple: the spec's outputs."""

    def __init__(self):
        super().__init__()
        self.body = nn.Conv2d(3, 8, 3, padding=1)
        self.cls = nn.Conv2d(8, 4, 1)
        self.box = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        x = F.relu(self.body(x))
        return self.cls(x), self.box(x)


class Unsupported(nn.Module):
    """Ops with no layer type: an LSTM, a power, a sort."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.rnn = nn.LSTM(4, 4)

    def forward(self, x):
        x = self.conv(x) ** 2
        return torch.sort(x, dim=1).values


class Branchy(nn.Module):
    """Python control flow on a tensor's values: torch.fx cannot trace it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.conv(x) if x.sum() > 0 else x


MODELS = {  # name → input size
    "Residual": (3, 32, 32), "SE": (3, 32, 32), "InceptionNet": (3, 16, 16), "UNet": (3, 32, 32),
    "Dilated1d": (1, 64), "Separable": (3, 32, 32), "Functional": (3, 32, 32), "Shared": (3, 8, 8),
    "TwoHeads": (3, 8, 8), "DeadBranch": (3, 8, 8),
}


class HostileNames(nn.Module):
    """Module names no spec name can hold (a ModuleDict takes any string)."""

    def __init__(self):
        super().__init__()
        self.parts = nn.ModuleDict({"a b": nn.Conv2d(3, 4, 1), "\x1b[31mred\x1b[0m": nn.ReLU()})

    def forward(self, x):
        return self.parts["\x1b[31mred\x1b[0m"](self.parts["a b"](x))


class DeadBranch(nn.Module):
    """A branch computed and never used (torch still runs and counts it), and an argument left
    at its default."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.unused = nn.Conv2d(8, 4, 1)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x, mask=None):
        x = F.relu(self.conv(x))
        self.unused(x)
        return self.head(x)


def noisy():
    """A factory that prints (its text must not enter the spec on standard output)."""
    print("building the model…")
    return TwoHeads()


def quits():
    raise SystemExit(3)
