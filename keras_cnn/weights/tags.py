"""Named pretrained weights from timm and torchvision: `weights="torchvision:resnet50.IMAGENET1K_V2"`.

A tag names a published checkpoint. Loading one downloads the file once (into
`$KERAS_CNN_HOME/weights/`, default `~/.keras/keras_cnn/weights/`), verifies its SHA-256, and
converts it with `keras_cnn.weights.convert` (outputs equal to the reference library's; see
`tests/test_weights_convert.py`). Offline, the error names the URL and the path to place the
file at. Each tag carries what evaluating it needs: input size, crop fraction, interpolation,
mean/std (the model normalises inside, so these are for the resize/crop only) and the reference
top-1 the library publishes.

Hashes: torchvision files carry the first 8 hex digits of their SHA-256 in the file name (as
`torch.hub` checks them); Hugging Face (timm) files are checked against the SHA-256 the hub
announces for the file (its LFS object id, the `X-Linked-Etag` header) unless the table pins one.
`.pth` files need torch (`torch.load(weights_only=True)`); `.safetensors` files never do.
"""

import dataclasses
import hashlib
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request

__all__ = ["TAGS", "WeightsTag", "cache_path", "fetch", "get_tag", "load_tagged", "tags_for"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TORCHVISION_URL = "https://download.pytorch.org/models/{file}"
HF_URL = "https://huggingface.co/{repo}/resolve/main/model.safetensors"


@dataclasses.dataclass(frozen=True)
class WeightsTag:
    """One published checkpoint and how to evaluate it.

    Attributes:
        tag: The name given to `weights=` (`"torchvision:resnet50.IMAGENET1K_V2"`).
        model: The keras_cnn registry name it converts to.
        library: `"torchvision"` or `"timm"` (the converter's source layout).
        url: Where the checkpoint is downloaded from.
        sha256: The file's SHA-256, or a prefix of it; `None`: the hub's announced hash.
        input_size: Evaluation resolution.
        crop_fraction: Center-crop fraction (resize to `input_size / crop_fraction` first).
        interpolation: Resize interpolation (`"bilinear"`, `"bicubic"`).
        top1: The library's published ImageNet-1k validation top-1 (%), at `input_size`.
        mean: Normalisation mean (applied inside the model).
        std: Normalisation std (applied inside the model).
    """

    tag: str
    model: str
    library: str
    url: str
    sha256: str
    input_size: int
    crop_fraction: float
    interpolation: str
    top1: float
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD

    @property
    def filename(self):
        if self.library == "torchvision":
            return self.url.rsplit("/", 1)[1]
        return f"{self.tag.split(':', 1)[1]}.safetensors"


def _torchvision(model, weights, file, top1, resize=256, crop=224, tv_model=None):
    """A torchvision row: `weights` enum name, file `<arch>-<sha256[:8]>.pth`, resize then crop."""
    prefix = re.search(r"-([0-9a-f]{8})\.pth$", file).group(1)
    return WeightsTag(tag=f"torchvision:{tv_model or model}.{weights}", model=model, library="torchvision",
                      url=TORCHVISION_URL.format(file=file), sha256=prefix, input_size=crop,
                      crop_fraction=crop / resize, interpolation="bilinear", top1=top1)


def _timm(model, timm_tag, input_size, crop_fraction, interpolation, top1, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """A timm row: the checkpoint is the hub repository `timm/<tag>`'s `model.safetensors`."""
    return WeightsTag(tag=f"timm:{timm_tag}", model=model, library="timm", url=HF_URL.format(repo=f"timm/{timm_tag}"),
                      sha256=None, input_size=input_size, crop_fraction=crop_fraction, interpolation=interpolation,
                      top1=top1, mean=mean, std=std)


# torchvision's ResNet weights (torchvision 0.29 `ResNet*_Weights` / `ResNeXt*` / `Wide_ResNet*`:
# url, "acc@1", transforms' resize_size). V2 is the "new training recipe" (resize 232).
ROWS = (
    _torchvision("resnet18", "IMAGENET1K_V1", "resnet18-f37072fd.pth", 69.758),
    _torchvision("resnet34", "IMAGENET1K_V1", "resnet34-b627a593.pth", 73.314),
    _torchvision("resnet50", "IMAGENET1K_V1", "resnet50-0676ba61.pth", 76.130),
    _torchvision("resnet50", "IMAGENET1K_V2", "resnet50-11ad3fa6.pth", 80.858, resize=232),
    _torchvision("resnet101", "IMAGENET1K_V1", "resnet101-63fe2227.pth", 77.374),
    _torchvision("resnet101", "IMAGENET1K_V2", "resnet101-cd907fc2.pth", 81.886, resize=232),
    _torchvision("resnet152", "IMAGENET1K_V1", "resnet152-394f9c45.pth", 78.312),
    _torchvision("resnet152", "IMAGENET1K_V2", "resnet152-f82ba261.pth", 82.284, resize=232),
    _torchvision("resnext50_32x4d", "IMAGENET1K_V1", "resnext50_32x4d-7cdf4587.pth", 77.618),
    _torchvision("resnext50_32x4d", "IMAGENET1K_V2", "resnext50_32x4d-1a0047aa.pth", 81.198, resize=232),
    _torchvision("resnext101_32x8d", "IMAGENET1K_V1", "resnext101_32x8d-8ba56ff5.pth", 79.312),
    _torchvision("resnext101_32x8d", "IMAGENET1K_V2", "resnext101_32x8d-110c445d.pth", 82.834, resize=232),
    _torchvision("resnext101_64x4d", "IMAGENET1K_V1", "resnext101_64x4d-173b62eb.pth", 83.246, resize=232),
    _torchvision("wide_resnet50_2", "IMAGENET1K_V1", "wide_resnet50_2-95faca4d.pth", 78.468),
    _torchvision("wide_resnet50_2", "IMAGENET1K_V2", "wide_resnet50_2-9ba9bcbe.pth", 81.602, resize=232),
    _torchvision("wide_resnet101_2", "IMAGENET1K_V1", "wide_resnet101_2-32ee1156.pth", 78.848),
    _torchvision("wide_resnet101_2", "IMAGENET1K_V2", "wide_resnet101_2-d733dc28.pth", 82.510, resize=232),
    # The classic families (torchvision 0.29's *_Weights.IMAGENET1K_V1).
    _torchvision("alexnet", "IMAGENET1K_V1", "alexnet-owt-7be5be79.pth", 56.522),
    _torchvision("vgg11", "IMAGENET1K_V1", "vgg11-8a719046.pth", 69.020),
    _torchvision("vgg11_bn", "IMAGENET1K_V1", "vgg11_bn-6002323d.pth", 70.370),
    _torchvision("vgg13", "IMAGENET1K_V1", "vgg13-19584684.pth", 69.928),
    _torchvision("vgg13_bn", "IMAGENET1K_V1", "vgg13_bn-abd245e5.pth", 71.586),
    _torchvision("vgg16", "IMAGENET1K_V1", "vgg16-397923af.pth", 71.592),
    _torchvision("vgg16_bn", "IMAGENET1K_V1", "vgg16_bn-6c64b313.pth", 73.360),
    _torchvision("vgg19", "IMAGENET1K_V1", "vgg19-dcbb9e9d.pth", 72.376),
    _torchvision("vgg19_bn", "IMAGENET1K_V1", "vgg19_bn-c79401a0.pth", 74.218),
    _torchvision("densenet121", "IMAGENET1K_V1", "densenet121-a639ec97.pth", 74.434),
    _torchvision("densenet161", "IMAGENET1K_V1", "densenet161-8d451a50.pth", 77.138),
    _torchvision("densenet169", "IMAGENET1K_V1", "densenet169-b2777c0a.pth", 75.600),
    _torchvision("densenet201", "IMAGENET1K_V1", "densenet201-c1103571.pth", 76.896),
    _torchvision("squeezenet1_0", "IMAGENET1K_V1", "squeezenet1_0-b66bff10.pth", 58.092),
    _torchvision("squeezenet1_1", "IMAGENET1K_V1", "squeezenet1_1-b8a52dc0.pth", 58.178),
    _torchvision("googlenet", "IMAGENET1K_V1", "googlenet-1378be20.pth", 69.778),
    _torchvision("inception_v3", "IMAGENET1K_V1", "inception_v3_google-0cc3c7bd.pth", 77.294, resize=342, crop=299),
)

# timm's Hugging Face checkpoints (timm 1.0.31 `pretrained_cfg`: input_size, crop_pct, interpolation;
# top-1 at that input size from timm's results/results-imagenet.csv, commit 7479d451).
TIMM_ROWS = (
    _timm("resnet18", "resnet18.a1_in1k", 224, 0.95, "bicubic", 71.488),
    _timm("resnet34", "resnet34.a1_in1k", 224, 0.95, "bicubic", 76.414),
    _timm("resnet50", "resnet50.a1_in1k", 224, 0.95, "bicubic", 80.382),
    _timm("resnet101", "resnet101.a1_in1k", 224, 0.95, "bicubic", 81.494),
    _timm("resnet152", "resnet152.a1_in1k", 224, 0.95, "bicubic", 81.998),
    _timm("resnet50c", "resnet50c.gluon_in1k", 224, 0.875, "bicubic", 78.016),
    _timm("resnet18d", "resnet18d.ra2_in1k", 224, 0.875, "bicubic", 72.268),
    _timm("resnet34d", "resnet34d.ra2_in1k", 224, 0.875, "bicubic", 77.104),
    _timm("resnet50d", "resnet50d.a1_in1k", 224, 0.95, "bicubic", 80.730),
    _timm("resnet50d", "resnet50d.ra2_in1k", 224, 0.875, "bicubic", 80.548),
    _timm("resnet101d", "resnet101d.gluon_in1k", 224, 0.875, "bicubic", 80.466),
    _timm("resnet152d", "resnet152d.gluon_in1k", 224, 0.875, "bicubic", 80.476),
    _timm("resnet200d", "resnet200d.ra2_in1k", 256, 0.95, "bicubic", 83.240),
    _timm("resnext50_32x4d", "resnext50_32x4d.a1_in1k", 224, 0.95, "bicubic", 80.526),
    _timm("resnext101_32x4d", "resnext101_32x4d.fb_ssl_yfcc100m_ft_in1k", 224, 0.875, "bilinear", 80.936),
    _timm("resnext101_32x8d", "resnext101_32x8d.fb_ssl_yfcc100m_ft_in1k", 224, 0.875, "bilinear", 81.620),
    _timm("resnext101_64x4d", "resnext101_64x4d.c1_in1k", 224, 0.95, "bicubic", 82.446),
    _timm("wide_resnet50_2", "wide_resnet50_2.racm_in1k", 224, 0.875, "bicubic", 81.488),
    _timm("wide_resnet101_2", "wide_resnet101_2.tv2_in1k", 176, 0.875, "bilinear", 80.488),
    _timm("seresnet50", "seresnet50.a1_in1k", 224, 0.95, "bicubic", 80.012),
    _timm("seresnext50_32x4d", "seresnext50_32x4d.gluon_in1k", 224, 0.875, "bicubic", 79.918),
    _timm("seresnext101_32x4d", "seresnext101_32x4d.gluon_in1k", 224, 0.875, "bicubic", 80.886),
    # EfficientNet: the TF-ported checkpoints (`tf_` = TF "same" padding, as keras_cnn builds it),
    # AutoAugment-trained and Noisy Student (JFT-300M unlabeled) ones.
    *(_timm(f"efficientnet_b{i}", f"tf_efficientnet_b{i}.aa_in1k", size, crop, "bicubic", top1)
      for i, size, crop, top1 in ((0, 224, 0.875, 76.882), (1, 240, 0.882, 78.840), (2, 260, 0.890, 80.082),
                                  (3, 300, 0.904, 81.648), (4, 380, 0.922, 83.040), (5, 456, 0.934, 83.696),
                                  (6, 528, 0.942, 84.118), (7, 600, 0.949, 84.436))),
    *(_timm(f"efficientnet_b{i}", f"tf_efficientnet_b{i}.ns_jft_in1k", size, crop, "bicubic", top1)
      for i, size, crop, top1 in ((0, 224, 0.875, 78.684), (1, 240, 0.882, 81.388), (2, 260, 0.890, 82.412),
                                  (3, 300, 0.904, 84.064), (4, 380, 0.922, 85.176), (5, 456, 0.934, 86.102),
                                  (6, 528, 0.942, 86.476), (7, 600, 0.949, 86.852))),
    _timm("efficientnet_l2", "tf_efficientnet_l2.ns_jft_in1k", 800, 0.96, "bicubic", 88.362),
    _timm("efficientnet_l2", "tf_efficientnet_l2.ns_jft_in1k_475", 475, 0.936, "bicubic", 88.250),
    _timm("mobilenetv1_100", "mobilenetv1_100.ra4_e3600_r224_in1k", 224, 0.875, "bicubic", 75.384,
          mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
)

TAGS = {row.tag: row for row in (*ROWS, *TIMM_ROWS)}


def tags_for(name):
    """The tags that load into registry model `name`, in table order."""
    return tuple(tag for tag, row in TAGS.items() if row.model == name)


def get_tag(tag):
    """The `WeightsTag` of `tag`; `ValueError` naming the known tags otherwise."""
    if tag not in TAGS:
        raise ValueError(f"Unknown weights tag {tag!r}; known tags: {sorted(TAGS)}")
    return TAGS[tag]


def cache_path(tag, cache_dir=None):
    """Where `tag`'s checkpoint is (or will be) cached."""
    row = get_tag(tag)
    root = cache_dir or os.path.join(
        os.environ.get("KERAS_CNN_HOME", os.path.join(os.path.expanduser("~"), ".keras", "keras_cnn")), "weights")
    return os.path.join(root, row.library, row.filename)


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_hash(path, expected, row):
    actual = _sha256(path)
    if not actual.startswith(expected.lower()):
        raise ValueError(f"{path} is not the checkpoint of {row.tag!r}: its SHA-256 is {actual}, expected "
                         f"{expected}{'...' if len(expected) < 64 else ''}. Delete it to download it again.")


def _announced_sha256(response):
    # The hub serves LFS files through a redirect; the file's SHA-256 is its ETag there.
    for header in ("X-Linked-Etag", "ETag"):
        value = (response.headers.get(header) or "").strip('"').removeprefix("W/").strip('"')
        if re.fullmatch(r"[0-9a-f]{64}", value):
            return value
    return None


def _download(row, path, timeout):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    request = urllib.request.Request(row.url, headers={"User-Agent": "keras_cnn"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            expected = row.sha256 or _announced_sha256(response)
            if expected is None:
                raise ValueError(f"{row.url} announces no SHA-256 and {row.tag!r} pins none: refusing to use "
                                 f"an unverifiable file")
            with tempfile.NamedTemporaryFile(dir=os.path.dirname(path), delete=False) as tmp:
                shutil.copyfileobj(response, tmp, 1 << 20)
    except (urllib.error.URLError, OSError) as error:
        from keras_cnn.weights.keras_applications import WeightsUnavailableError

        raise WeightsUnavailableError(
            f"Could not download the weights {row.tag!r} from {row.url} ({error}). Offline, download the "
            f"file elsewhere and place it at {path}" + (f" (its SHA-256 starts with {row.sha256})"
                                                       if row.sha256 else "")
        ) from None
    try:
        _check_hash(tmp.name, expected, row)
    except ValueError:
        os.remove(tmp.name)
        raise
    os.replace(tmp.name, path)  # atomic: a killed download never leaves a half file at `path`


def fetch(tag, *, cache_dir=None, timeout=60):
    """The local path of `tag`'s checkpoint: cached, or downloaded and verified first.

    Args:
        tag: A key of `TAGS`.
        cache_dir: Cache root (default `$KERAS_CNN_HOME/weights`).
        timeout: Seconds to wait for the server.

    Returns:
        The path of the verified file.

    Raises:
        WeightsUnavailableError: Offline (the message names the URL and where to put the file).
        ValueError: The file's hash does not match.
    """
    row = get_tag(tag)
    path = cache_path(tag, cache_dir)
    if os.path.isfile(path):
        if row.sha256:  # a file placed by hand (offline) is checked like a download
            _check_hash(path, row.sha256, row)
        return path
    _download(row, path, timeout)
    return path


def _copy_layers(source, target):
    """Copies every weighted layer of `target` from the same-named layer of `source`."""
    for layer in target.layers:
        if not layer.weights:
            continue
        values = source.get_layer(layer.name).get_weights()
        layer.set_weights(values)
    return target


def load_tagged(name, tag, kwargs, *, cache_dir=None):
    """Registry model `name` with the converted checkpoint `tag`.

    Args:
        name: Registry name (one of `TAGS[tag].model`).
        tag: The weights tag.
        kwargs: The user's other builder arguments (already checked by `load_pretrained`).
        cache_dir: Cache root (default `$KERAS_CNN_HOME/weights`).

    Returns:
        The model with the converted weights.
    """
    from keras_cnn.registry import get_model_info
    from keras_cnn.weights.convert import convert_checkpoint, family_converter

    row = get_tag(tag)
    if row.model != name:
        raise ValueError(f"weights={tag!r} are for {row.model!r}, received it for {name!r}")
    path = fetch(tag, cache_dir=cache_dir)
    kwargs = dict(kwargs)
    include_top = kwargs.pop("include_top", True)
    full_kwargs = {k: v for k, v in kwargs.items() if k != "pooling"}
    full = convert_checkpoint(name, path, source=row.library, include_top=True, **full_kwargs)
    if include_top:
        return full
    info = get_model_info(name)
    spec = family_converter(info.family).source_spec(name, row.library)
    target = info.builder(include_top=False, input_normalization=spec.input_normalization,
                          **{**spec.builder_args, **kwargs})
    return _copy_layers(full, target)
