"""Generates the checkpoint-conversion fixtures from timm/torchvision, and checks full-size models.

Two sides, two interpreters (torch is never installed next to keras_cnn in CI):

* Generating (needs torch, torchvision, timm, safetensors; imports nothing from keras_cnn):

      /work/venv-torch/bin/python tools/make_weight_fixtures.py [--out tests/fixtures/weights]

  builds each reference model with random weights at reduced width/depth, randomises its
  batch-norm statistics, and writes `<fixture>.safetensors` (<= ~2 MB), `<fixture>.npz` (a
  fixed uint8 [0, 255] NHWC input and the reference float64 logits) and `manifest.json` (the
  registry name each fixture stands for and the keras_cnn builder arguments that reduce it
  the same way). `tests/weights/test_weights_convert.py` converts them without torch. `--only F ...`
  regenerates the named fixtures only (each is seeded on its own) and merges the manifest.
  keras_cnn's GoogLeNet and Inception-v3 have fixed widths: their fixtures are full width,
  with the conv/linear kernels left out of the file and recomputed on both sides by
  `generated_tensor` (listed under `generated` in the manifest); aux heads are compared
  too (`aux_logits` in the `.npz`).

* Full size (random weights, 224 px (Inception-v3: 299), batch 2; downloads nothing):

      /work/venv-torch/bin/python tools/make_weight_fixtures.py --full --keras-python python3

  writes full-size checkpoints and references to `--full-dir`, then runs
  `<keras-python> tools/make_weight_fixtures.py --compare <dir>` (the keras_cnn side) which
  converts each and prints max |Δ| of the logits. `--compare tests/fixtures/weights` does the
  same for the committed fixtures.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time
import zlib

import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])
# What the torch model is fed (`torch_input` of a fixture): torchvision/timm normalise
# [0, 1] images with these; googlenet/inception_v3 with `transform_input=True` take the
# ImageNet-normalised input and turn it into [-1, 1] themselves.
TORCH_INPUTS = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD), "tf": (np.full(3, 0.5), np.full(3, 0.5))}
SEED = 0
FIXTURE_CLASSES = 10
FIXTURE_INPUT = (67, 64)  # odd, non-square: catches padding / ceil-mode and H/W mix-ups
FULL_INPUT = (224, 224)
BATCH = 2
MANIFEST = "manifest.json"
MIN_RUNNING_VAR = 1e-2
RESIDUAL_BN_SCALE = 0.5
FULL_NAMES = ("resnet50", "resnet50d", "resnext50_32x4d", "wide_resnet50_2", "seresnet50",
              "seresnext50_32x4d", "senet154", "efficientnet_b0", "mobilenetv1_100", "densenet121",
              "vgg16_bn", "alexnet", "squeezenet1_1", "googlenet", "inception_v3")


# ------------------------------------------------------------------ generated kernels
# Both sides (torch here, numpy in the tests) need this, so it uses nothing but numpy.

_GOLDEN = 0x9E3779B97F4A7C15  # splitmix64's increment
CONV_GAIN, LINEAR_GAIN = 2.0, 0.02
_MIX = (0xBF58476D1CE4E5B9, 0x94D049BB133111EB)


def generated_tensor(key, shape):
    """A float32 conv/linear kernel defined by its state-dict name and (PyTorch) shape.

    keras_cnn's GoogLeNet and Inception-v3 have fixed widths, so their fixtures are full
    width: storing their kernels would take 13-50 MB. Their kernels are instead this
    function of the tensor's name: uniform with the variance of Kaiming's initialisation
    (2 / fan_in) for convolutions and 0.02 / fan_in for linear layers (logits of order 1,
    so float32's own noise stays well below the 1e-4 tolerance), from splitmix64 over a
    counter seeded by the name's CRC-32, which every numpy gives bit for bit (no RNG
    library, whose streams may change). Batch-norm parameters, statistics and biases are
    still stored.

    Args:
        key: State-dict name (`"inception3a.branch1.conv.weight"`).
        shape: Its shape, output channels first.

    Returns:
        A float32 array of `shape`.
    """
    count, fan_in = math.prod(shape), math.prod(shape[1:])
    with np.errstate(over="ignore"):
        z = (np.arange(1, count + 1, dtype=np.uint64) * np.uint64(_GOLDEN)
             + np.uint64(zlib.crc32(key.encode("utf-8")) << 32))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(_MIX[0])
        z = (z ^ (z >> np.uint64(27))) * np.uint64(_MIX[1])
        z = z ^ (z >> np.uint64(31))
    uniform = (z >> np.uint64(11)).astype(np.float64) * 2.0 ** -53  # [0, 1)
    gain = CONV_GAIN if len(shape) > 2 else LINEAR_GAIN
    bound = math.sqrt(3.0 * gain / fan_in)  # uniform [-b, b] has variance b**2 / 3
    return ((2.0 * uniform - 1.0) * bound).astype(np.float32).reshape(shape)


def with_generated(state_dict, generated):
    """A fixture's stored tensors plus its generated kernels (`{name: shape}`)."""
    return {**state_dict, **{key: generated_tensor(key, tuple(shape)) for key, shape in generated.items()}}


# --------------------------------------------------------------------------- torch side


def _torch():
    import timm  # noqa: F401  (fail early, with the install hint)
    import torch

    return torch


def _reduced_torchvision(block_name, layers, planes_divisor, classes, **kwargs):
    """torchvision ResNet with every stage's `planes` divided (torchvision hard-codes 64..512).

    Only `_make_layer`'s `planes` and the classifier's input change; module names and the
    forward pass stay torchvision's.
    """
    import torch
    from torchvision.models import resnet as tv

    block = getattr(tv, block_name)

    class ReducedResNet(tv.ResNet):
        def _make_layer(self, block, planes, *args, **kw):
            return super()._make_layer(block, planes // planes_divisor, *args, **kw)

    model = ReducedResNet(block, layers, num_classes=classes, **kwargs)
    model.fc = torch.nn.Linear(512 // planes_divisor * block.expansion, classes)
    return model


def _reduced_legacy_senet(layers, planes, groups, classes):
    """timm's legacy SENet-154 (SEBottleneck, 3x3 stem, 3x3 downsampling) with given planes."""
    import torch
    from timm.models import senet

    stage_planes = iter(planes)

    class ReducedSENet(senet.SENet):
        def _make_layer(self, block, planes, *args, **kw):
            return super()._make_layer(block, next(stage_planes), *args, **kw)

    model = ReducedSENet(senet.SEBottleneck, layers, groups=groups, reduction=16, inplanes=128,
                         input_3x3=True, downsample_kernel_size=3, downsample_padding=1,
                         num_classes=classes)
    model.last_linear = torch.nn.Linear(planes[-1] * 4, classes)
    return model


def _timm_resnet(block_name, classes, **kwargs):
    from timm.models import resnet

    return resnet.ResNet(getattr(resnet, block_name), num_classes=classes, **kwargs)


def _timm_tf_efficientnet(width, depth, classes):
    """timm's `tf_efficientnet_*` (TF "same" padding, BN epsilon 1e-3) at any width/depth."""
    from timm.models import efficientnet

    return efficientnet._gen_efficientnet("tf_efficientnet_b0", channel_multiplier=width,
                                          depth_multiplier=depth, bn_eps=1e-3, pad_type="same",
                                          num_classes=classes)


def _timm_mobilenetv1(width, classes):
    from timm.models import efficientnet

    return efficientnet._gen_mobilenet_v1("mobilenetv1_100", width, num_classes=classes)


def _torchvision_vgg(depths, widths, batch_norm, fc_units, classes):
    """torchvision's VGG class with reduced stage widths and fully connected layers."""
    import torch
    from torchvision.models import vgg

    config = [v for depth, width in zip(depths, widths) for v in [width] * depth + ["M"]]
    model = vgg.VGG(vgg.make_layers(config, batch_norm=batch_norm), num_classes=classes, init_weights=False)
    units = [widths[-1] * 7 * 7, *fc_units, classes]
    for index, (a, b) in zip((0, 3, 6), zip(units, units[1:])):
        model.classifier[index] = torch.nn.Linear(a, b)
    return model


def _torchvision_alexnet(convs, fc_units, classes):
    """torchvision's AlexNet with its convs and linear layers replaced by narrower ones
    (same positions in `features` / `classifier`, so the same module names)."""
    import torch
    from torchvision.models import AlexNet

    model = AlexNet(num_classes=classes)
    channels = 3
    for index, row in zip((0, 3, 6, 8, 10), convs):
        model.features[index] = torch.nn.Conv2d(channels, row["filters"], row["kernel"],
                                                stride=row.get("stride", 1), padding=row["padding"])
        channels = row["filters"]
    units = [channels * 6 * 6, *fc_units, classes]
    for index, (a, b) in zip((1, 4, 6), zip(units, units[1:])):
        model.classifier[index] = torch.nn.Linear(a, b)
    return model


def _torchvision_squeezenet(version, stem, fires, pool_after, classes):
    """torchvision's SqueezeNet with a reduced stem and Fire table, in torchvision's order."""
    import torch
    from torchvision.models import squeezenet

    model = squeezenet.SqueezeNet(version, num_classes=classes)
    stem_filters, stem_kernel = stem
    modules = [torch.nn.Conv2d(3, stem_filters, stem_kernel, stride=2), torch.nn.ReLU(inplace=True)]
    channels = stem_filters
    for position in range(len(fires) + 1):
        if position in pool_after:
            modules.append(torch.nn.MaxPool2d(3, 2, ceil_mode=True))
        if position < len(fires):
            fire = fires[position]
            modules.append(squeezenet.Fire(channels, fire["squeeze"], fire["expand1x1"], fire["expand3x3"]))
            channels = fire["expand1x1"] + fire["expand3x3"]
    model.features = torch.nn.Sequential(*modules)
    model.classifier[1] = torch.nn.Conv2d(channels, classes, 1)
    return model


def _torchvision_googlenet(classes):
    from torchvision.models import GoogLeNet

    # transform_input=True is how torchvision runs its ImageNet weights.
    return GoogLeNet(num_classes=classes, aux_logits=True, transform_input=True, init_weights=False)


def _torchvision_inception_v3(classes):
    from torchvision.models import Inception3

    return Inception3(num_classes=classes, aux_logits=True, transform_input=True, init_weights=False)


def _hooked_aux(pairs):
    """Aux logits of a torchvision model in eval mode (which skips its aux heads): each
    `(module read, aux head)` pair of attribute names runs the head on the module output."""

    def run(model, x, torch):
        captured = {}
        handles = [getattr(model, read).register_forward_hook(
            lambda module, args, output, read=read: captured.__setitem__(read, output))
            for read, _ in pairs]
        try:
            main = model(x)
            aux = [getattr(model, head)(captured[read]) for read, head in pairs]
        finally:
            for handle in handles:
                handle.remove()
        return main, torch.stack(aux)

    return run


def _squeeze_fires(divisor):
    from_table = ((16, 64), (16, 64), (32, 128), (32, 128), (48, 192), (48, 192), (64, 256), (64, 256))
    return [{"squeeze": s // divisor, "expand1x1": e // divisor, "expand3x3": e // divisor}
            for s, e in from_table]


SMALL = (8, 16, 32, 64)  # stage widths of the reduced models
ALEXNET_SMALL = [
    {"filters": 16, "kernel": 11, "stride": 4, "padding": 2, "pool": True},
    {"filters": 24, "kernel": 5, "padding": 2, "pool": True},
    {"filters": 32, "kernel": 3, "padding": 1},
    {"filters": 24, "kernel": 3, "padding": 1},
    {"filters": 24, "kernel": 3, "padding": 1, "pool": True},
]
# Each fixture: the registry name it stands for, the source model at reduced size, the
# keras_cnn builder overrides that reduce the registry row the same way, and the dtype the
# checkpoint stores (F16/BF16 fixtures also exercise the reader's widening).
FIXTURES = {
    "tv_resnet18": dict(
        name="resnet18", library="torchvision", dtype="F32",
        make=lambda: _reduced_torchvision("BasicBlock", [2, 1, 1, 1], 8, FIXTURE_CLASSES),
        overrides=dict(depths=[2, 1, 1, 1], planes=list(SMALL))),
    "tv_resnet50": dict(
        name="resnet50", library="torchvision", dtype="F32",
        make=lambda: _reduced_torchvision("Bottleneck", [1, 2, 1, 1], 8, FIXTURE_CLASSES),
        overrides=dict(depths=[1, 2, 1, 1], planes=list(SMALL))),
    "tv_resnext50": dict(
        name="resnext50_32x4d", library="torchvision", dtype="F32",
        make=lambda: _reduced_torchvision("Bottleneck", [1, 1, 2, 1], 8, FIXTURE_CLASSES,
                                          groups=4, width_per_group=16),
        overrides=dict(depths=[1, 1, 2, 1], planes=list(SMALL), groups=4, base_width=16)),
    "tv_wide_resnet50": dict(
        name="wide_resnet50_2", library="torchvision", dtype="BF16",
        make=lambda: _reduced_torchvision("Bottleneck", [1, 1, 1, 2], 8, FIXTURE_CLASSES,
                                          width_per_group=128),
        overrides=dict(depths=[1, 1, 1, 2], planes=list(SMALL))),
    "timm_resnet50": dict(
        name="resnet50", library="timm", dtype="F32",
        make=lambda: _timm_resnet("Bottleneck", FIXTURE_CLASSES, layers=[1, 1, 1, 1], channels=SMALL),
        overrides=dict(depths=[1, 1, 1, 1], planes=list(SMALL))),
    "timm_resnet50c": dict(
        name="resnet50c", library="timm", dtype="F32",
        make=lambda: _timm_resnet("Bottleneck", FIXTURE_CLASSES, layers=[1, 1, 1, 1], channels=SMALL,
                                  stem_type="deep", stem_width=16),
        overrides=dict(depths=[1, 1, 1, 1], planes=list(SMALL), stem_width=16)),
    "timm_resnet18d": dict(
        name="resnet18d", library="timm", dtype="F32",
        make=lambda: _timm_resnet("BasicBlock", FIXTURE_CLASSES, layers=[2, 1, 1, 1], channels=SMALL,
                                  stem_type="deep", stem_width=16, avg_down=True),
        overrides=dict(depths=[2, 1, 1, 1], planes=list(SMALL), stem_width=16)),
    "timm_resnet50d": dict(
        name="resnet50d", library="timm", dtype="F16",
        make=lambda: _timm_resnet("Bottleneck", FIXTURE_CLASSES, layers=[1, 2, 1, 1], channels=SMALL,
                                  stem_type="deep", stem_width=16, avg_down=True),
        overrides=dict(depths=[1, 2, 1, 1], planes=list(SMALL), stem_width=16)),
    "timm_seresnet18": dict(
        name="seresnet18", library="timm", dtype="F32",
        make=lambda: _timm_resnet("BasicBlock", FIXTURE_CLASSES, layers=[1, 1, 1, 1], channels=SMALL,
                                  block_args=dict(attn_layer="se")),
        overrides=dict(depths=[1, 1, 1, 1], planes=list(SMALL))),
    "timm_seresnet50": dict(
        name="seresnet50", library="timm", dtype="F32",
        make=lambda: _timm_resnet("Bottleneck", FIXTURE_CLASSES, layers=[1, 1, 1, 1], channels=SMALL,
                                  block_args=dict(attn_layer="se")),
        overrides=dict(depths=[1, 1, 1, 1], planes=list(SMALL))),
    "timm_seresnext50": dict(
        name="seresnext50_32x4d", library="timm", dtype="F32",
        make=lambda: _timm_resnet("Bottleneck", FIXTURE_CLASSES, layers=[1, 1, 1, 1], channels=SMALL,
                                  cardinality=4, base_width=16, block_args=dict(attn_layer="se")),
        overrides=dict(depths=[1, 1, 1, 1], planes=list(SMALL), groups=4, base_width=16)),
    # Legacy SENet sizes its SE bottleneck as channels // 16 where keras_cnn (and timm's
    # ResNet) round to a multiple of 8: the two agree for multiples of 128 channels, which
    # is every SENet-154 stage, so the reduced model keeps 4 * planes = 128.
    "timm_senet154": dict(
        name="senet154", library="timm", dtype="F16",
        make=lambda: _reduced_legacy_senet([1, 1, 1, 1], (32, 32, 32, 32), 16, FIXTURE_CLASSES),
        overrides=dict(depths=[1, 1, 1, 1], planes=[32, 32, 32, 32], groups=16, base_width=16)),
    # EfficientNet: the odd 67 px height exercises TF "same" padding's extra bottom row.
    "timm_tf_efficientnet_b0": dict(
        name="efficientnet_b0", library="timm", dtype="F32",
        make=lambda: _timm_tf_efficientnet(0.25, 0.5, FIXTURE_CLASSES), residual_bns="bn3",
        overrides=dict(width_coefficient=0.25, depth_coefficient=0.5)),
    "timm_tf_efficientnet_l2": dict(
        name="efficientnet_l2", library="timm", dtype="F16",
        make=lambda: _timm_tf_efficientnet(0.3, 1.1, FIXTURE_CLASSES), residual_bns="bn3",
        overrides=dict(width_coefficient=0.3, depth_coefficient=1.1)),
    "timm_mobilenetv1_100": dict(
        name="mobilenetv1_100", library="timm", dtype="F32", torch_input="tf",
        make=lambda: _timm_mobilenetv1(0.25, FIXTURE_CLASSES),
        overrides=dict(width_multiplier=0.25)),
    "tv_densenet121": dict(
        name="densenet121", library="torchvision", dtype="F32",
        make=lambda: __import__("torchvision").models.DenseNet(
            growth_rate=8, block_config=(2, 3, 2, 2), num_init_features=16, num_classes=FIXTURE_CLASSES),
        overrides=dict(block_config=[2, 3, 2, 2], growth_rate=8, num_init_features=16)),
    # VGG and AlexNet: sizes whose last maps are non-square (3x2), so the adaptive pool and
    # the channels-first flatten of the first fully connected layer are really tested.
    "tv_vgg11": dict(
        name="vgg11", library="torchvision", dtype="F32", input=(100, 64),
        make=lambda: _torchvision_vgg((1, 1, 2, 2, 2), (8, 16, 16, 24, 24), False, (32, 24), FIXTURE_CLASSES),
        overrides=dict(widths=[8, 16, 16, 24, 24], fc_units=[32, 24])),
    "tv_vgg16_bn": dict(
        name="vgg16_bn", library="torchvision", dtype="BF16", input=(100, 64),
        make=lambda: _torchvision_vgg((2, 2, 3, 3, 3), (8, 16, 16, 24, 24), True, (32, 24), FIXTURE_CLASSES),
        overrides=dict(widths=[8, 16, 16, 24, 24], fc_units=[32, 24])),
    "tv_alexnet": dict(
        name="alexnet", library="torchvision", dtype="F32", input=(131, 115),
        make=lambda: _torchvision_alexnet(ALEXNET_SMALL, (48, 32), FIXTURE_CLASSES),
        overrides=dict(convs=ALEXNET_SMALL, fc_units=[48, 32])),
    "tv_squeezenet1_0": dict(
        name="squeezenet1_0", library="torchvision", dtype="F32",
        make=lambda: _torchvision_squeezenet("1_0", (24, 7), _squeeze_fires(4), (0, 3, 7), FIXTURE_CLASSES),
        overrides=dict(stem_filters=24, fire_modules=_squeeze_fires(4))),
    "tv_squeezenet1_1": dict(
        name="squeezenet1_1", library="torchvision", dtype="F32",
        make=lambda: _torchvision_squeezenet("1_1", (16, 3), _squeeze_fires(4), (0, 2, 4), FIXTURE_CLASSES),
        overrides=dict(stem_filters=16, fire_modules=_squeeze_fires(4))),
    # GoogLeNet and Inception-v3 have fixed widths in keras_cnn: full-width models whose
    # conv/linear kernels are `generated_tensor`s (not stored; see GENERATED), with aux heads.
    "tv_googlenet": dict(
        name="googlenet", library="torchvision", dtype="F16", generate_kernels=True,
        make=lambda: _torchvision_googlenet(FIXTURE_CLASSES),
        aux=_hooked_aux((("inception4a", "aux1"), ("inception4d", "aux2"))),
        overrides=dict()),
    # Mixed_6e must be 17x17 for torchvision's 5x5/3 aux pool: inputs of 297-310 px.
    "tv_inception_v3": dict(
        name="inception_v3", library="torchvision", dtype="F16", generate_kernels=True,
        input=(299, 301), make=lambda: _torchvision_inception_v3(FIXTURE_CLASSES),
        aux=_hooked_aux((("Mixed_6e", "AuxLogits"),)),
        overrides=dict()),
}


def _normalize(images, torch_input="imagenet"):
    """NHWC [0, 255] images -> the NCHW, mean/std-normalised input timm/torchvision expect."""
    mean, std = TORCH_INPUTS[torch_input]
    return np.ascontiguousarray(((images / 255.0 - mean) / std).transpose(0, 3, 1, 2))


def generate_kernels(model, torch):
    """Sets every conv/linear kernel to its `generated_tensor`; returns `{name: shape}`."""
    generated = {}
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if tensor.is_floating_point() and tensor.ndim >= 2:
                tensor.copy_(torch.from_numpy(generated_tensor(key, tuple(tensor.shape))))
                generated[key] = list(tensor.shape)
    return generated


def randomize(model, torch, *, seed, input_size, torch_input="imagenet", residual_bns=None):
    """Random weights with non-trivial batch-norm parameters and statistics.

    Batch-norm statistics are first calibrated on random images like the test input (so
    activations keep a moderate scale through a deep random network: with arbitrary
    statistics a 154-layer net's logits reach 1e4 and float32 itself loses every digit),
    then perturbed, so the running mean and variance are not the test batch's statistics.

    Args:
        residual_bns: Suffix of the batch norms closing residual branches (`"bn3"` in
            timm's EfficientNet), whose scale and shift are halved: a random EfficientNet
            otherwise adds up its perturbed branches to logits of 1e3-1e4 where float32
            keeps no digit of 1e-4 (trained networks have small residual gammas too).
    """
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed + 1)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        if not bns:
            # Without batch norm (VGG, AlexNet, SqueezeNet) PyTorch's default init shrinks
            # the signal layer by layer until the biases alone set the logits: Kaiming
            # normal weights and small biases keep the logits input-dependent.
            for module in model.modules():
                if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                    fan_in = module.weight[0].numel()
                    module.weight.copy_(torch.randn(module.weight.shape, generator=generator)
                                        * math.sqrt(2.0 / fan_in))
                    if module.bias is not None:
                        module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.05)
        for bn in bns:
            bn.weight.copy_(torch.rand(bn.weight.shape, generator=generator) + 0.5)
            bn.bias.copy_(torch.randn(bn.bias.shape, generator=generator) * 0.2)
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the calibration batches
        model.train()
        for _ in range(2):
            images = rng.integers(0, 256, (BATCH, *input_size, 3)).astype(np.float64)
            model(torch.from_numpy(_normalize(images, torch_input)).float())
        for bn in bns:
            bn.running_mean.add_(torch.randn(bn.running_mean.shape, generator=generator)
                                 * bn.running_var.sqrt() * 0.1)
            bn.running_var.mul_(torch.rand(bn.running_var.shape, generator=generator) * 0.6 + 0.7)
            # A channel that was (almost) constant in calibration would be divided by
            # sqrt(epsilon) and amplify float32 rounding 300-fold (SENet-154's grouped convs
            # have such channels); real checkpoints do not.
            bn.running_var.clamp_(min=MIN_RUNNING_VAR)
            bn.num_batches_tracked.fill_(int(torch.randint(1, 10_000, (), generator=generator)))
        if residual_bns:
            for name, module in model.named_modules():
                if name.endswith(residual_bns) and isinstance(module, torch.nn.BatchNorm2d):
                    module.weight.mul_(RESIDUAL_BN_SCALE)
                    module.bias.mul_(RESIDUAL_BN_SCALE)
    model.eval()
    return model


def _round_to(model, dtype, torch, keep=()):
    """Rounds every tensor (but `keep`) to the storage dtype, so the reference sees the
    stored values."""
    torch_dtype = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}[dtype]
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if tensor.is_floating_point() and key not in keep:
                tensor.copy_(tensor.to(torch_dtype).float())
    return torch_dtype


def reference(model, images, torch, *, torch_input="imagenet", aux=None):
    """Logits of NHWC [0, 255] `images` (the source's own preprocessing).

    Args:
        aux: Optional `aux(model, x, torch) -> (logits, stacked aux logits)` for models
            whose auxiliary heads eval mode skips.

    Returns:
        `(float64 logits, float64 aux logits or None, max |float32 - float64| over them)`:
        the last is the source's own float32 noise, the floor any float32 port can reach.
    """
    x = torch.from_numpy(_normalize(images, torch_input))

    def run(dtype):
        with torch.no_grad():
            model.to(dtype)
            if aux is None:
                return model(x.to(dtype)).double().numpy(), None
            main, aux_logits = aux(model, x.to(dtype), torch)
            return main.double().numpy(), aux_logits.double().numpy()

    single, single_aux = run(torch.float32)
    out, out_aux = run(torch.float64)
    model.float()
    delta = float(np.abs(single - out).max())
    if out_aux is not None:
        delta = max(delta, float(np.abs(single_aux - out_aux).max()))
    return out, out_aux, delta


def save(model, path, torch_dtype, metadata, skip=()):
    from safetensors.torch import save_file

    state = {k: (v.to(torch_dtype) if v.is_floating_point() else v).contiguous()
             for k, v in model.state_dict().items() if k not in skip}
    save_file(state, path, metadata={k: str(v) for k, v in metadata.items()})
    os.chmod(path, 0o644)  # save_file creates 0600; fixtures are committed


def make_fixtures(out, only=None):
    """Writes the fixtures (all, or those named in `only`, merged into the existing
    manifest), the manifest and a size report to `out`."""
    torch = _torch()
    import timm
    import torchvision

    os.makedirs(out, exist_ok=True)
    manifest = {"fixtures": {}}
    if only and os.path.exists(os.path.join(out, MANIFEST)):
        with open(os.path.join(out, MANIFEST)) as handle:
            manifest = json.load(handle)
    manifest.update({"torch": torch.__version__, "torchvision": torchvision.__version__,
                     "timm": timm.__version__, "input_normalization": "imagenet"})
    for index, (fixture, spec) in enumerate(FIXTURES.items()):
        if only and fixture not in only:
            continue
        torch.manual_seed(SEED + index)  # each fixture reproducible on its own
        input_size = spec.get("input", FIXTURE_INPUT)
        torch_input = spec.get("torch_input", "imagenet")
        model = spec["make"]()
        generated = generate_kernels(model, torch) if spec.get("generate_kernels") else {}
        randomize(model, torch, seed=SEED + index, input_size=input_size, torch_input=torch_input,
                  residual_bns=spec.get("residual_bns"))
        torch_dtype = _round_to(model, spec["dtype"], torch, keep=generated)
        rng = np.random.default_rng(SEED + index)
        # Integer pixel values: the input is stored exactly as uint8.
        images = rng.integers(0, 256, (BATCH, *input_size, 3), dtype=np.uint8)
        images[1:] //= 2  # darker, lower-contrast: the two images' logits differ clearly
        logits, aux_logits, torch_delta = reference(model, images.astype(np.float64), torch,
                                                    torch_input=torch_input, aux=spec.get("aux"))
        weights = os.path.join(out, f"{fixture}.safetensors")
        save(model, weights, torch_dtype, {"source": spec["library"], "stands_for": spec["name"]},
             skip=generated)
        arrays = {"images": images, "logits": logits}
        if aux_logits is not None:
            arrays["aux_logits"] = aux_logits
        np.savez_compressed(os.path.join(out, f"{fixture}.npz"), **arrays)
        manifest["fixtures"][fixture] = {
            "name": spec["name"], "source": spec["library"], "dtype": spec["dtype"],
            "overrides": {**spec["overrides"], "classes": FIXTURE_CLASSES},
            "input_shape": [*input_size, 3],
            "parameters": sum(p.numel() for p in model.parameters()),
            "torch_float32_delta": torch_delta,
        }
        if generated:
            manifest["fixtures"][fixture]["generated"] = generated
        print(f"{fixture:20s} {spec['name']:20s} {os.path.getsize(weights) / 1e6:6.2f} MB "
              f"max|logit| {np.abs(logits).max():.3f}")
    with open(os.path.join(out, MANIFEST), "w") as handle:
        json.dump(manifest, handle, indent=1, sort_keys=True)
        handle.write("\n")


def _full_spec(name):
    """`(library, model, torch_input, input size, aux)` of a full-size registry name."""
    import timm
    import torchvision

    timm_names = {"senet154": "legacy_senet154",
                  **{f"efficientnet_{k}": f"tf_efficientnet_{k}" for k in (*(f"b{i}" for i in range(8)), "l2")}}
    if name == "googlenet":
        return ("torchvision", _torchvision_googlenet(1000), "imagenet", FULL_INPUT,
                _hooked_aux((("inception4a", "aux1"), ("inception4d", "aux2"))))
    if name == "inception_v3":
        return ("torchvision", _torchvision_inception_v3(1000), "imagenet", (299, 299),
                _hooked_aux((("Mixed_6e", "AuxLogits"),)))
    if name.startswith("mobilenetv1_"):
        return "timm", timm.create_model(name, pretrained=False), "tf", FULL_INPUT, None
    if name in timm_names:
        return "timm", timm.create_model(timm_names[name], pretrained=False), "imagenet", FULL_INPUT, None
    if hasattr(torchvision.models, name):
        return "torchvision", getattr(torchvision.models, name)(weights=None), "imagenet", FULL_INPUT, None
    return "timm", timm.create_model(name, pretrained=False), "imagenet", FULL_INPUT, None


def make_full(out, names):
    """Full-size random checkpoints + float64 references at 224 px (299 for Inception-v3;
    nothing downloaded)."""
    torch = _torch()
    import timm

    os.makedirs(out, exist_ok=True)
    manifest = {"torch": torch.__version__, "timm": timm.__version__,
                "input_normalization": "imagenet", "fixtures": {}}
    for index, name in enumerate(names):
        started = time.perf_counter()
        library, model, torch_input, input_size, aux = _full_spec(name)
        randomize(model, torch, seed=SEED + index, input_size=input_size, torch_input=torch_input,
                  residual_bns="bn3" if name.startswith("efficientnet_") else None)
        images = np.random.default_rng(SEED + index).integers(0, 256, (BATCH, *input_size, 3), dtype=np.uint8)
        logits, aux_logits, torch_delta = reference(model, images.astype(np.float64), torch,
                                                    torch_input=torch_input, aux=aux)
        save(model, os.path.join(out, f"{name}.safetensors"), torch.float32, {"source": library})
        arrays = {"images": images, "logits": logits}
        if aux_logits is not None:
            arrays["aux_logits"] = aux_logits
        np.savez_compressed(os.path.join(out, f"{name}.npz"), **arrays)
        manifest["fixtures"][name] = {"name": name, "source": library, "dtype": "F32",
                                      "overrides": {}, "input_shape": [*input_size, 3],
                                      "torch_float32_delta": torch_delta}
        print(f"{name}: {library} reference in {time.perf_counter() - started:.0f} s, max|logit| "
              f"{np.abs(logits).max():.3f}, torch float32 max|Δ| {torch_delta:.2e}", flush=True)
        del model
    with open(os.path.join(out, MANIFEST), "w") as handle:
        json.dump(manifest, handle, indent=1, sort_keys=True)


# ------------------------------------------------------------------------ keras_cnn side


def converted_outputs(directory, fixture, entry, checkpoint=None, **kwargs):
    """Converts one checkpoint of a fixture directory (keras_cnn side).

    Returns:
        `(model, logits, aux logits or None)` on the stored images, logits as float64
        (aux logits stacked like the reference's, evaluated at inference).
    """
    import keras

    from keras_cnn.weights.convert import convert_checkpoint
    from keras_cnn.weights.safetensors import load_state_dict

    if checkpoint is None:
        checkpoint = os.path.join(directory, f"{fixture}.safetensors")
        if entry.get("generated"):
            checkpoint = with_generated(load_state_dict(checkpoint), entry["generated"])
    model = convert_checkpoint(entry["name"], checkpoint, source=entry["source"],
                               input_shape=tuple(entry["input_shape"]), classifier_activation=None,
                               **{**entry["overrides"], **kwargs})
    images = np.load(os.path.join(directory, f"{fixture}.npz"))["images"].astype(np.float32)
    # A plain functional view of the graph returns the aux heads at inference too.
    outputs = keras.Model(model.input, model.outputs)(images, training=False)
    outputs = [np.asarray(o, np.float64) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]
    return model, outputs[0], (np.stack(outputs[1:]) if len(outputs) > 1 else None)


def output_delta(directory, fixture, logits, aux_logits):
    """max |Δ| against the stored reference, over the logits and any aux logits."""
    data = np.load(os.path.join(directory, f"{fixture}.npz"))
    delta = float(np.abs(logits - data["logits"]).max())
    if "aux_logits" in data.files:
        if aux_logits is None or aux_logits.shape != data["aux_logits"].shape:
            raise ValueError(f"{fixture}: the reference has aux logits {data['aux_logits'].shape}, "
                             f"the converted model {None if aux_logits is None else aux_logits.shape}")
        delta = max(delta, float(np.abs(aux_logits - data["aux_logits"]).max()))
    return delta


def compare(directory, only=None):
    """Converts each checkpoint of a fixture directory with keras_cnn; prints max |Δ|.

    Returns:
        `{fixture: max |Δ|}`.
    """

    with open(os.path.join(directory, MANIFEST)) as handle:
        manifest = json.load(handle)
    results = {}
    for fixture, entry in manifest["fixtures"].items():
        if only and fixture not in only:
            continue
        started = time.perf_counter()
        data = np.load(os.path.join(directory, f"{fixture}.npz"))
        _, logits, aux_logits = converted_outputs(directory, fixture, entry)
        delta = output_delta(directory, fixture, logits, aux_logits)
        results[fixture] = delta
        print(f"{fixture:20s} {entry['name']:20s} max|Δ| {delta:.2e}  max|logit| "
              f"{np.abs(data['logits']).max():8.3f}  torch float32 max|Δ| "
              f"{entry.get('torch_float32_delta', float('nan')):.2e}  "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join("tests", "data", "weights"))
    parser.add_argument("--full", action="store_true", help="full-size models instead of fixtures")
    parser.add_argument("--full-dir", default="/tmp/keras_cnn_full_checkpoints")
    parser.add_argument("--names", nargs="*", default=list(FULL_NAMES))
    parser.add_argument("--keras-python", default=os.environ.get("KERAS_CNN_PYTHON", "python3"),
                        help="interpreter with keras_cnn installed, for the comparison")
    parser.add_argument("--compare", metavar="DIR", help="keras_cnn side: convert and compare DIR")
    parser.add_argument("--only", nargs="*", help="these fixtures only (generated or compared)")
    args = parser.parse_args(argv)
    if args.compare:
        results = compare(args.compare, only=args.only)
        return 0 if results else 1
    if args.full:
        make_full(args.full_dir, args.names)
        target = args.full_dir
    else:
        make_fixtures(args.out, only=args.only)
        target = args.out
    print(f"Comparing with {args.keras_python} ...", flush=True)
    command = [args.keras_python, os.path.abspath(__file__), "--compare", target]
    return subprocess.call(command + (["--only", *args.only] if args.only and not args.full else []))


if __name__ == "__main__":
    sys.exit(main())
