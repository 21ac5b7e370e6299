"""Generates the checkpoint-conversion fixtures from timm/torchvision, and checks full-size models.

Two sides, two interpreters (torch is never installed next to keras_cnn in CI):

* Generating (needs torch, torchvision, timm, safetensors; imports nothing from keras_cnn):

      /work/venv-torch/bin/python tools/make_weight_fixtures.py [--out tests/data/weights]

  builds each reference model with random weights at reduced width/depth, randomises its
  batch-norm statistics, and writes `<fixture>.safetensors` (<= ~2 MB), `<fixture>.npz` (a
  fixed uint8 [0, 255] NHWC input and the reference float64 logits) and `manifest.json` (the
  registry name each fixture stands for and the keras_cnn builder arguments that reduce it
  the same way). `tests/test_weights_convert.py` converts them without torch.

* Full size (random weights, 224 px, batch 2; downloads nothing):

      /work/venv-torch/bin/python tools/make_weight_fixtures.py --full --keras-python python3

  writes full-size checkpoints and references to `--full-dir`, then runs
  `<keras-python> tools/make_weight_fixtures.py --compare <dir>` (the keras_cnn side) which
  converts each and prints max |Δ| of the logits. `--compare tests/data/weights` does the
  same for the committed fixtures.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])
SEED = 0
FIXTURE_CLASSES = 10
FIXTURE_INPUT = (67, 64)  # odd, non-square: catches padding / ceil-mode and H/W mix-ups
FULL_INPUT = (224, 224)
BATCH = 2
MANIFEST = "manifest.json"
MIN_RUNNING_VAR = 1e-2
FULL_NAMES = ("resnet50", "resnet50d", "resnext50_32x4d", "wide_resnet50_2", "seresnet50",
              "seresnext50_32x4d", "senet154")


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


SMALL = (8, 16, 32, 64)  # stage widths of the reduced models
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
}


def _normalize(images):
    """NHWC [0, 255] images -> the NCHW, mean/std-normalised input timm/torchvision expect."""
    return np.ascontiguousarray(((images / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).transpose(0, 3, 1, 2))


def randomize(model, torch, *, seed, input_size):
    """Random weights with non-trivial batch-norm parameters and statistics.

    Batch-norm statistics are first calibrated on random images like the test input (so
    activations keep a moderate scale through a deep random network: with arbitrary
    statistics a 154-layer net's logits reach 1e4 and float32 itself loses every digit),
    then perturbed, so the running mean and variance are not the test batch's statistics.
    """
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed + 1)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in bns:
            bn.weight.copy_(torch.rand(bn.weight.shape, generator=generator) + 0.5)
            bn.bias.copy_(torch.randn(bn.bias.shape, generator=generator) * 0.2)
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the calibration batches
        model.train()
        for _ in range(2):
            images = rng.integers(0, 256, (BATCH, *input_size, 3)).astype(np.float64)
            model(torch.from_numpy(_normalize(images)).float())
        for bn in bns:
            bn.running_mean.add_(torch.randn(bn.running_mean.shape, generator=generator)
                                 * bn.running_var.sqrt() * 0.1)
            bn.running_var.mul_(torch.rand(bn.running_var.shape, generator=generator) * 0.6 + 0.7)
            # A channel that was (almost) constant in calibration would be divided by
            # sqrt(epsilon) and amplify float32 rounding 300-fold (SENet-154's grouped convs
            # have such channels); real checkpoints do not.
            bn.running_var.clamp_(min=MIN_RUNNING_VAR)
            bn.num_batches_tracked.fill_(int(torch.randint(1, 10_000, (), generator=generator)))
    model.eval()
    return model


def _round_to(model, dtype, torch):
    """Rounds every tensor to the storage dtype, so the reference sees the stored values."""
    torch_dtype = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}[dtype]
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.to(torch_dtype).float())
    return torch_dtype


def reference(model, images, torch):
    """Logits of NHWC [0, 255] `images` (the source's own preprocessing).

    Returns:
        `(float64 logits, max |float32 logits - float64 logits|)`: the second is the
        source's own float32 noise, the floor any float32 port can reach.
    """
    x = torch.from_numpy(_normalize(images))
    with torch.no_grad():
        single = model.float()(x.float()).double().numpy()
        out = model.double()(x).numpy()
    model.float()
    return out, float(np.abs(single - out).max())


def save(model, path, torch_dtype, metadata):
    from safetensors.torch import save_file

    state = {k: (v.to(torch_dtype) if v.is_floating_point() else v).contiguous()
             for k, v in model.state_dict().items()}
    save_file(state, path, metadata={k: str(v) for k, v in metadata.items()})
    os.chmod(path, 0o644)  # save_file creates 0600; fixtures are committed


def make_fixtures(out):
    """Writes every fixture, the manifest and a size report to `out`."""
    torch = _torch()
    import timm
    import torchvision

    torch.manual_seed(SEED)
    os.makedirs(out, exist_ok=True)
    manifest = {"torch": torch.__version__, "torchvision": torchvision.__version__,
                "timm": timm.__version__, "input_normalization": "imagenet", "fixtures": {}}
    for index, (fixture, spec) in enumerate(FIXTURES.items()):
        model = spec["make"]()
        randomize(model, torch, seed=SEED + index, input_size=FIXTURE_INPUT)
        torch_dtype = _round_to(model, spec["dtype"], torch)
        rng = np.random.default_rng(SEED + index)
        # Integer pixel values: the input is stored exactly as uint8.
        images = rng.integers(0, 256, (BATCH, *FIXTURE_INPUT, 3), dtype=np.uint8)
        logits, torch_delta = reference(model, images.astype(np.float64), torch)
        weights = os.path.join(out, f"{fixture}.safetensors")
        save(model, weights, torch_dtype, {"source": spec["library"], "stands_for": spec["name"]})
        np.savez_compressed(os.path.join(out, f"{fixture}.npz"), images=images, logits=logits)
        manifest["fixtures"][fixture] = {
            "name": spec["name"], "source": spec["library"], "dtype": spec["dtype"],
            "overrides": {**spec["overrides"], "classes": FIXTURE_CLASSES},
            "input_shape": [*FIXTURE_INPUT, 3],
            "parameters": sum(p.numel() for p in model.parameters()),
            "torch_float32_delta": torch_delta,
        }
        print(f"{fixture:20s} {spec['name']:20s} {os.path.getsize(weights) / 1e6:6.2f} MB "
              f"max|logit| {np.abs(logits).max():.3f}")
    with open(os.path.join(out, MANIFEST), "w") as handle:
        json.dump(manifest, handle, indent=1, sort_keys=True)
        handle.write("\n")


def make_full(out, names):
    """Full-size random checkpoints + float64 references at 224 px (nothing downloaded)."""
    torch = _torch()
    import timm
    import torchvision

    os.makedirs(out, exist_ok=True)
    manifest = {"torch": torch.__version__, "timm": timm.__version__,
                "input_normalization": "imagenet", "fixtures": {}}
    for index, name in enumerate(names):
        started = time.perf_counter()
        if name in ("senet154",):
            library, model = "timm", timm.create_model("legacy_senet154", pretrained=False)
        elif hasattr(torchvision.models, name):
            library, model = "torchvision", getattr(torchvision.models, name)(weights=None)
        else:
            library, model = "timm", timm.create_model(name, pretrained=False)
        randomize(model, torch, seed=SEED + index, input_size=FULL_INPUT)
        images = np.random.default_rng(SEED + index).integers(0, 256, (BATCH, *FULL_INPUT, 3), dtype=np.uint8)
        logits, torch_delta = reference(model, images.astype(np.float64), torch)
        save(model, os.path.join(out, f"{name}.safetensors"), torch.float32, {"source": library})
        np.savez_compressed(os.path.join(out, f"{name}.npz"), images=images, logits=logits)
        manifest["fixtures"][name] = {"name": name, "source": library, "dtype": "F32",
                                      "overrides": {}, "input_shape": [*FULL_INPUT, 3],
                                      "torch_float32_delta": torch_delta}
        print(f"{name}: {library} reference in {time.perf_counter() - started:.0f} s, max|logit| "
              f"{np.abs(logits).max():.3f}, torch float32 max|Δ| {torch_delta:.2e}", flush=True)
        del model
    with open(os.path.join(out, MANIFEST), "w") as handle:
        json.dump(manifest, handle, indent=1, sort_keys=True)


# ------------------------------------------------------------------------ keras_cnn side


def compare(directory, only=None):
    """Converts each checkpoint of a fixture directory with keras_cnn; prints max |Δ|.

    Returns:
        `{fixture: max |Δ|}`.
    """
    from keras_cnn.weights.convert import convert_checkpoint

    with open(os.path.join(directory, MANIFEST)) as handle:
        manifest = json.load(handle)
    results = {}
    for fixture, entry in manifest["fixtures"].items():
        if only and fixture not in only:
            continue
        started = time.perf_counter()
        data = np.load(os.path.join(directory, f"{fixture}.npz"))
        model = convert_checkpoint(entry["name"], os.path.join(directory, f"{fixture}.safetensors"),
                                   source=entry["source"], input_shape=tuple(entry["input_shape"]),
                                   classifier_activation=None, **entry["overrides"])
        images = data["images"].astype(np.float32)  # stored as uint8 [0, 255]
        logits = np.asarray(model(images, training=False), np.float64)
        delta = float(np.abs(logits - data["logits"]).max())
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
    parser.add_argument("--only", nargs="*", help="with --compare: these fixtures only")
    args = parser.parse_args(argv)
    if args.compare:
        results = compare(args.compare, only=args.only)
        return 0 if results else 1
    if args.full:
        make_full(args.full_dir, args.names)
        target = args.full_dir
    else:
        make_fixtures(args.out)
        target = args.out
    print(f"Comparing with {args.keras_python} ...", flush=True)
    return subprocess.call([args.keras_python, os.path.abspath(__file__), "--compare", target])


if __name__ == "__main__":
    sys.exit(main())
