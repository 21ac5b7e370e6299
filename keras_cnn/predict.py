"""Top-k predictions of a trained run directory or a `.keras` model on image files.

    from keras_cnn.predict import load_predictor, predict
    for result in predict("runs/digits_quickstart", ["seven.png"], top=3):
        print(result.path, result.top[0].name, result.top[0].probability)

A run directory (`keras-cnn train`'s output: `model.keras` + `config.json`) carries the whole
input contract: its dataset's class names, the training resolution and the evaluation
preprocessing of its recipe (`keras_cnn.data.preprocess_eval`: resize, or for ImageNet-like
data resize to size / crop_fraction + center crop). A bare `.keras` file is read at its input
size (224 when the size is dynamic), with ImageNet's preprocessing and class names when it has
1000 outputs (the ImageNet-weights models), else class ids as names. Images are decoded to RGB
(grey images replicated, like the Fashion-MNIST and digits rows) in [0, 255]: the models
normalise inside. Logits (what the runner saves) go through a softmax; a model that already
outputs probabilities is read as is.
"""

import dataclasses
import json
import os

import numpy as np

__all__ = ["Prediction", "Predictor", "TopK", "format_predictions", "load_predictor", "predict"]

DEFAULT_IMAGE_SIZE = 224  # the size a model with a dynamic input is read at
IMAGENET_CLASSES = 1000


@dataclasses.dataclass(frozen=True)
class TopK:
    """One of the top-k classes of an image."""

    index: int
    name: str
    probability: float


@dataclasses.dataclass(frozen=True)
class Prediction:
    """The top-k classes of one image, most probable first."""

    path: str
    top: tuple


@dataclasses.dataclass
class Predictor:
    """A model with its input contract.

    Attributes:
        model: The Keras model.
        image_size: Input side in pixels.
        preprocessing: A `keras_cnn.data.preprocess_eval` kind (`"imagenet"`, `"cifar"`, `"none"`).
        crop_fraction: Center-crop fraction of `"imagenet"` preprocessing.
        class_names: One name per output class.
        source: Where the model came from (for messages).
    """

    model: object
    image_size: int
    preprocessing: str
    crop_fraction: float
    class_names: tuple
    source: str = ""

    def preprocess(self, paths):
        """Reads image files into the model's input batch (float32 `[n, size, size, 3]`, [0, 255])."""
        import tensorflow as tf

        from keras_cnn.data import preprocess_eval

        images = []
        for path in paths:
            path = os.fspath(path)
            if not os.path.isfile(path):
                raise ValueError(f"image file not found: received image={path!r}")
            try:
                image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
            except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
                raise ValueError(f"cannot decode image (PNG, JPEG, GIF or BMP expected): received image={path!r}") from None
            images.append(preprocess_eval(image, size=self.image_size, kind=self.preprocessing,
                                          crop_fraction=self.crop_fraction).numpy())
        return np.stack(images).astype("float32")

    def probabilities(self, batch):
        """Class probabilities `[n, classes]` of a preprocessed batch."""
        outputs = np.asarray(self.model.predict_on_batch(batch), dtype="float64")
        if np.all(outputs >= 0) and np.allclose(outputs.sum(axis=-1), 1.0, atol=1e-3):
            return outputs  # a softmax head
        outputs = outputs - outputs.max(axis=-1, keepdims=True)
        exp = np.exp(outputs)
        return exp / exp.sum(axis=-1, keepdims=True)

    def __call__(self, images, top=5):
        """Top-`top` predictions of image files.

        Args:
            images: Image file paths (PNG, JPEG, GIF, BMP).
            top: How many classes to return per image (at most the number of classes).

        Returns:
            A list of `Prediction`, one per image.
        """
        if isinstance(images, (str, os.PathLike)):
            images = [images]
        images = [os.fspath(p) for p in images]
        if not images:
            raise ValueError("`images` must name at least one image file, received images=[]")
        if isinstance(top, bool) or not isinstance(top, int) or top < 1:
            raise ValueError(f"`top` must be a positive integer, received top={top!r}")
        top = min(top, len(self.class_names))
        probabilities = self.probabilities(self.preprocess(images))
        results = []
        for path, row in zip(images, probabilities):
            order = np.argsort(-row, kind="stable")[:top]
            results.append(Prediction(path, tuple(TopK(int(i), self.class_names[i], float(row[i])) for i in order)))
        return results


def _run_contract(run_dir):
    """(image_size, preprocessing, crop_fraction, class_names) from a run's config.json."""
    from keras_cnn.data import get_dataset_info
    from keras_cnn.data.class_names import CLASS_NAMES, class_names
    from keras_cnn.training.config import resolve_config

    with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as file:
        cfg = resolve_config(json.load(file), source=f"{run_dir}/config.json ")
    try:
        info = get_dataset_info(cfg.data.dataset)
    except ValueError:  # not a row of DATASETS (a user's image folder): the model gives the rest
        info = None
    auto = info.preprocessing if info is not None else "none"
    preprocessing = auto if cfg.data.preprocessing == "auto" else cfg.data.preprocessing
    # The run's own list first: results.json records `class_names` (a user's image folder has no
    # built-in names; its subfolders, sorted, are the classes).
    recorded = None
    results_file = os.path.join(run_dir, "results.json")
    if os.path.isfile(results_file):
        with open(results_file, encoding="utf-8") as file:
            recorded = json.load(file).get("class_names")
    if recorded:
        names = tuple(str(name) for name in recorded)
    elif info is not None and info.name in CLASS_NAMES:
        names = class_names(info.name)
    else:
        names = None  # the class ids
    image_size = cfg.data.image_size or (info.image_size if info is not None else None)
    return image_size, preprocessing, cfg.data.crop_fraction, names


def load_predictor(model, *, class_names=None):
    """A `Predictor` for a run directory, a `.keras` file or a built Keras model.

    Args:
        model: A run directory of `keras-cnn train` (holding `model.keras` and `config.json`),
            a `.keras` file, or a `keras.Model`.
        class_names: Names for the model's classes (default: the run's dataset names; for a
            model with 1000 outputs ImageNet's; else the class ids).

    Returns:
        A `Predictor`.
    """
    import keras

    from keras_cnn.data.class_names import imagenet_class_names
    from keras_cnn.data.preprocessing import DEFAULT_CROP_FRACTION

    contract = None
    if isinstance(model, keras.Model):
        source = model.name
    else:
        if not isinstance(model, (str, os.PathLike)):
            raise ValueError(f"`model` must be a run directory, a .keras file or a keras.Model, received {model!r}")
        source = os.fspath(model)
        if os.path.isdir(source):
            path = os.path.join(source, "model.keras")
            if not os.path.isfile(path) or not os.path.isfile(os.path.join(source, "config.json")):
                raise ValueError(f"{source!r} is not a finished run directory (model.keras and config.json "
                                 f"expected; an unfinished run has no model.keras yet): received model={source!r}")
            contract = _run_contract(source)
        elif source.endswith(".keras") and os.path.isfile(source):
            path = source
        else:
            raise ValueError(f"`model` must be a run directory or an existing .keras file, received model={source!r}")
        model = keras.saving.load_model(path, compile=False)
    classes = int(model.outputs[0].shape[-1])
    if contract is None:
        side = model.inputs[0].shape[1]
        imagenet = classes == IMAGENET_CLASSES
        contract = (side or DEFAULT_IMAGE_SIZE, "imagenet" if imagenet else "none", DEFAULT_CROP_FRACTION,
                    imagenet_class_names() if imagenet else tuple(str(i) for i in range(classes)))
    image_size, preprocessing, crop_fraction, names = contract
    image_size = image_size or model.inputs[0].shape[1] or DEFAULT_IMAGE_SIZE
    if class_names is not None:
        names = tuple(str(name) for name in class_names)
    elif names is None:
        names = tuple(str(i) for i in range(classes))
    if len(names) != classes:
        raise ValueError(f"`class_names` must have one name per output ({classes}), received {len(names)} names")
    return Predictor(model, image_size, preprocessing, crop_fraction, names, source)


def predict(model, images, *, top=5, class_names=None):
    """Top-k class predictions of image files.

    Args:
        model: A run directory, a `.keras` file or a `keras.Model` (see `load_predictor`).
        images: An image path or a list of them.
        top: Classes per image.
        class_names: Optional names overriding the model's (see `load_predictor`).

    Returns:
        A list of `Prediction` (`path`, `top`: `TopK(index, name, probability)` tuples,
        most probable first), one per image.
    """
    return load_predictor(model, class_names=class_names)(images, top=top)


def format_predictions(predictions):
    """The text `keras-cnn predict` prints: one block per image, a line per class."""
    lines = []
    for prediction in predictions:
        lines.append(prediction.path)
        lines.extend(f"  {100 * k.probability:6.2f} %  {k.name} ({k.index})" for k in prediction.top)
    return "\n".join(lines)
