"""The declarative pieces of a family's weights: `WeightsSpec` and the records it holds.

One module per family under `keras_cnn.weights.families` declares everything keras_cnn knows
about that family's pretrained weights as one `WEIGHTS = WeightsSpec(...)`: the
keras.applications namesakes it ports (`KerasApplicationsPort`), the timm/torchvision models
whose state dicts it converts (`SourceSpec`, with the layouts' `styles`), the published
checkpoints it names (`WeightsTag`), and the hooks the generic code calls (layer mappings,
unused head modules, legacy key renaming, keras.applications layer names). The model builders
never see any of it. This module imports nothing from keras_cnn, so a family's weights module
is plain data plus the functions it names.
"""

import dataclasses
import re
from collections.abc import Callable, Mapping

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TORCHVISION_URL = "https://download.pytorch.org/models/{file}"
HF_URL = "https://huggingface.co/{repo}/resolve/main/model.safetensors"
IMAGENET = "imagenet"  # the tag of keras.applications' ImageNet weights (`weights="imagenet"`)


@dataclasses.dataclass(frozen=True)
class LayerMapping:
    """One Keras layer fed by one source module.

    Attributes:
        target: Keras layer name (`"stage1_block1_1_conv"`).
        source: Source module prefix (`"layer1.0.conv1"`); its tensors are `prefix.weight`...
        kind: A key of `keras_cnn.weights.convert.KINDS`.
        flattened_from: For a dense layer reading a flattened feature map, its `(height,
            width, channels)`: PyTorch flattens `(channels, height, width)`, so the kernel's
            input rows are reordered.
    """

    target: str
    source: str
    kind: str
    flattened_from: tuple | None = None


@dataclasses.dataclass(frozen=True)
class KerasApplicationsPort:
    """How one keras.applications constructor maps onto a keras_cnn registry name.

    Attributes:
        name: keras_cnn registry name.
        input_normalization: The `input_normalization` reproducing the constructor's
            preprocessing (a preset name, a `(mean, std)` pair, or a function of the
            keras.applications model returning one).
        bgr_conv: Layer whose input channels are reversed (weights trained on BGR input).
        skip_source_layers: keras.applications layers with weights that have no
            counterpart because the preprocessing absorbed them: names or shell-style
            patterns (keras.applications leaves preprocessing layers unnamed, so Keras numbers
            them per session: `"normalization*"`).
        keras_name: The keras.applications `model.name`, when not `ctor.lower()`; or a
            predicate of the name, for constructors that encode their configuration in it
            (MobileNet's `mobilenet_1.00_224`).
        builder_args: Builder arguments the namesake needs beyond the registry row's
            (e.g. `{"aux_logits": False}`: keras.applications has no auxiliary heads).
        match: How layers are paired: `"name"` through the family's `keras_layer_name`,
            or `"order"`: the weighted layers of both models in creation order (for
            keras.applications models with auto-numbered names such as InceptionV3's
            `conv2d_37`), each pair checked for equal layer types.
    """

    name: str
    input_normalization: str | tuple | Callable = "imagenet"
    bgr_conv: str | None = None
    skip_source_layers: tuple = ()
    keras_name: str | Callable | None = None
    builder_args: dict = dataclasses.field(default_factory=dict)
    match: str = "name"


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


def torchvision_tag(model, weights, file, top1, resize=256, crop=224, tv_model=None):
    """A torchvision row: `weights` enum name, file `<arch>-<sha256[:8]>.pth`, resize then crop.

    Args:
        model: keras_cnn registry name.
        weights: torchvision's weights enum member (`"IMAGENET1K_V2"`).
        file: The file name under download.pytorch.org/models/.
        top1: torchvision's published `acc@1`.
        resize: The transforms' `resize_size`.
        crop: The transforms' `crop_size` (the evaluation resolution).
        tv_model: torchvision's model name, when not `model`.

    Returns:
        The `WeightsTag` `"torchvision:<model>.<weights>"`.
    """
    prefix = re.search(r"-([0-9a-f]{8})\.pth$", file).group(1)
    return WeightsTag(tag=f"torchvision:{tv_model or model}.{weights}", model=model, library="torchvision",
                      url=TORCHVISION_URL.format(file=file), sha256=prefix, input_size=crop,
                      crop_fraction=crop / resize, interpolation="bilinear", top1=top1)


def timm_tag(model, timm_tag, input_size, crop_fraction, interpolation, top1, mean=IMAGENET_MEAN,
             std=IMAGENET_STD):
    """A timm row: the checkpoint is the hub repository `timm/<tag>`'s `model.safetensors`.

    Args:
        model: keras_cnn registry name.
        timm_tag: timm's `<model>.<tag>` (`"resnet50.a1_in1k"`).
        input_size: `pretrained_cfg["input_size"]`'s resolution.
        crop_fraction: `pretrained_cfg["crop_pct"]`.
        interpolation: `pretrained_cfg["interpolation"]`.
        top1: The top-1 in timm's results table at `input_size`.
        mean: `pretrained_cfg["mean"]`.
        std: `pretrained_cfg["std"]`.

    Returns:
        The `WeightsTag` `"timm:<timm_tag>"`.
    """
    return WeightsTag(tag=f"timm:{timm_tag}", model=model, library="timm", url=HF_URL.format(repo=f"timm/{timm_tag}"),
                      sha256=None, input_size=input_size, crop_fraction=crop_fraction, interpolation=interpolation,
                      top1=top1, mean=mean, std=std)


def _no_layout(model, config, style):
    del config, style
    raise ValueError(f"No timm/torchvision checkpoint layout for the layers of {model.name!r}")


def _no_optional_sources(style):
    del style
    return ()


def _unchanged_state_dict(state_dict, style):
    del style
    return state_dict


def _same_layer_name(name):
    return name


@dataclasses.dataclass(frozen=True)
class WeightsSpec:
    """Everything keras_cnn knows about one family's pretrained weights, in one place.

    The hooks are typed fields with defaults: a family sets only those it needs.

    Attributes:
        family: The registry family it belongs to (`"resnet"`, the model module's name).
        title: How error messages name the family (`"ResNet-family"`).
        keras_applications: `{keras.applications constructor: KerasApplicationsPort}`.
        keras_layer_name: Maps a keras_cnn layer name to its keras.applications namesake's
            (ports with `match="name"`); default: the same name.
        sources: `{registry name: {library: SourceSpec}}`, the timm/torchvision models whose
            state dicts convert; the first library of a name is its default.
        styles: The family's checkpoint layouts (`SourceSpec.style` values).
        layer_mappings: `(model, config, style) -> [LayerMapping]` for every layer with
            weights (`config`: the builder arguments the model was built with).
        optional_sources: `style -> source module prefixes` a model built without its top
            (or auxiliary heads) leaves unused; default none.
        canonical_state_dict: `(state_dict, style) -> state_dict` renaming a library's older
            key spellings to the current ones; default unchanged.
        tags: The published checkpoints (`WeightsTag`) of the family's registry names.
    """

    family: str
    title: str = ""
    keras_applications: Mapping[str, KerasApplicationsPort] = dataclasses.field(default_factory=dict)
    keras_layer_name: Callable[[str], str] = _same_layer_name
    sources: Mapping[str, Mapping[str, object]] = dataclasses.field(default_factory=dict)
    styles: tuple[str, ...] = ("default",)
    layer_mappings: Callable[..., list] = _no_layout
    optional_sources: Callable[[str], tuple] = _no_optional_sources
    canonical_state_dict: Callable[[dict, str], dict] = _unchanged_state_dict
    tags: tuple[WeightsTag, ...] = ()

    def __post_init__(self):
        for tag in self.tags:
            if tag.library not in self.sources.get(tag.model, {}):
                raise ValueError(
                    f"Tag {tag.tag!r} of family {self.family!r} names {tag.model!r} from {tag.library!r}, "
                    f"which has no source layout in `sources`"
                )

    def source_spec(self, name, source=None):
        """The `SourceSpec` of registry name `name` from library `source` (default: the first).

        Raises:
            ValueError: for a name without checkpoints or an unknown source.
        """
        if name not in self.sources:
            raise ValueError(
                f"No timm/torchvision checkpoint layout for name={name!r}; {self.title or self.family} "
                f"names with one: {sorted(self.sources)}"
            )
        specs = self.sources[name]
        if source is None:
            return next(iter(specs.values()))
        if source not in specs:
            raise ValueError(f"{name!r} has checkpoints from {sorted(specs)}, received source={source!r}")
        return specs[source]

    def named_weights(self, name):
        """The `weights=` names registry name `name` accepts: `"imagenet"` for a
        keras.applications port, then its tags in table order."""
        ported = any(port.name == name for port in self.keras_applications.values())
        return ((IMAGENET,) if ported else ()) + tuple(tag.tag for tag in self.tags if tag.model == name)
