"""Independent figures the tests compare against: torchvision's published numbers (a copy of
shared/reference/torchvision.json, kept here so the suite stands alone) and stage receptive
fields by hand arithmetic."""
import json
import os

from conftest import DATA

with open(os.path.join(DATA, "torchvision.json")) as fh:
    TORCHVISION = json.load(fh)["models"]

# (size, jump) per stage: r' = r + (K − 1)·j, j' = j·S
VGG_STAGES = {"pool1": (6, 2), "pool2": (16, 4), "pool3": (44, 8), "pool4": (100, 16), "pool5": (212, 32)}
RESNET50_STAGES = {"conv1": (7, 2), "maxpool": (7 + 2 * 2, 4), "layer1.2.relu": (11 + 3 * 2 * 4, 4),
                   "layer2.3.relu": (35 + 2 * 4 + 3 * 2 * 8, 8), "layer3.5.relu": (91 + 2 * 8 + 5 * 2 * 16, 16),
                   "layer4.2.relu": (267 + 2 * 16 + 2 * 2 * 32, 32)}
ALEXNET_STAGES = {"conv1": (11, 4), "pool1": (19, 8), "conv2": (51, 8), "pool2": (67, 16), "pool5": (195, 32)}
