"""`make_pipeline`: a batched, prefetched `tf.data` input pipeline for training or evaluation.

Order of the stages (each chosen for a reason):

1. source: a `tf.data.Dataset` of `(image, label)` (as `load` returns) or of images only, or
   `(x, y)` numpy arrays; labels become int32;
2. cache of the *decoded, unaugmented* examples when they fit in memory (before any random
   op, so every epoch still gets fresh randomness);
3. shuffle (training), with a buffer of the whole dataset when it is small;
4. repeat (optional);
5. per-example preprocessing (`preprocess_train` / `preprocess_eval`) in a parallel map. Its
   randomness is stateless, seeded per example from `tf.data.Dataset.random(seed)` zipped to
   the examples: seeded runs are reproducible even with parallel maps, and each epoch differs
   (`rerandomize_each_iteration`). With `epoch=` the shuffle and the per-example seeds are
   instead functions of `(seed, epoch, position)`, so a resumed run sees the same epochs;
6. batch (training drops the remainder: static batch shapes for XLA / TPUs / replicas);
7. one-hot labels, then the `augment` layers and MixUp / CutMix on whole batches (vectorised
   Keras layers are much cheaper per batch than per image);
8. prefetch (AUTOTUNE).

`deterministic=True` keeps the element order (`tf.data.Options.deterministic`) and runs the
batch-level Keras layers sequentially, because their random state is a variable that parallel
calls would consume in a racy order; with the same seed (and freshly built layers) two
pipelines then give identical batches.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_cnn.data.augment import mixing_layers
from keras_cnn.data.preprocessing import DEFAULT_CROP_FRACTION, KINDS, preprocess_eval, preprocess_train
from keras_cnn.validation import check_bool, check_choice, check_positive_int

__all__ = ["CACHE_LIMIT_BYTES", "SMALL_DATASET", "epoch_variable", "make_pipeline"]

# Cache decoded examples when their estimated size is below this (CIFAR-10 train is 150 MiB).
CACHE_LIMIT_BYTES = 2 * 1024**3
# Datasets smaller than this are shuffled with a buffer of the whole dataset (exact shuffling);
# larger ones with `LARGE_SHUFFLE_BUFFER` examples (memory bound, e.g. ImageNet).
SMALL_DATASET = 100_000
LARGE_SHUFFLE_BUFFER = 10_000
_DEFAULT_DETERMINISTIC_SEED = 0
_PIXEL_MAX = 255.0


def _from_source(dataset):
    """`(tf.data.Dataset, has_labels, from_numpy)` for the accepted source types."""
    if isinstance(dataset, tf.data.Dataset):
        spec = dataset.element_spec
        if isinstance(spec, tuple) and len(spec) == 2:
            return dataset, True, False
        if isinstance(spec, tf.TensorSpec):
            return dataset, False, False
        raise ValueError(f"`dataset` must yield (image, label) pairs or images, received element_spec={spec!r}")
    if isinstance(dataset, (tuple, list)) and len(dataset) == 2:
        images, labels = (np.asarray(part) for part in dataset)
        if images.ndim != 4 or labels.ndim not in (1, 2) or len(images) != len(labels):
            raise ValueError(
                "`dataset` as numpy must be (images [N, H, W, C], labels [N] or [N, 1]), received shapes "
                f"{images.shape} and {labels.shape}")
        labels = labels.reshape(len(labels)).astype("int32")
        return tf.data.Dataset.from_tensor_slices((images, labels)), True, True
    raise ValueError(
        "`dataset` must be a tf.data.Dataset of (image, label) or an (images, labels) numpy pair, "
        f"received dataset of type {type(dataset).__name__}")


def _cardinality(dataset):
    return int(dataset.cardinality().numpy())


def _estimated_bytes(dataset, has_labels):
    """Estimated in-memory size of the dataset, or None when shapes/cardinality are unknown."""
    count = _cardinality(dataset)
    spec = dataset.element_spec[0] if has_labels else dataset.element_spec
    if count < 0 or not spec.shape.is_fully_defined():
        return None
    return count * int(np.prod(spec.shape)) * spec.dtype.size


def make_pipeline(
    dataset,
    *,
    training,
    batch_size,
    image_size,
    num_classes,
    preprocessing="none",
    one_hot=False,
    augment=None,
    mixup_alpha=0.0,
    cutmix_alpha=0.0,
    shuffle_buffer=None,
    seed=None,
    deterministic=False,
    cache=None,
    repeat=False,
    drop_remainder=None,
    crop_fraction=DEFAULT_CROP_FRACTION,
    epoch=None,
):
    """A batched, prefetched `tf.data.Dataset` of `(float32 images in [0, 255], labels)`.

    Args:
        dataset: A `tf.data.Dataset` of `(image, label)` as `load` returns (uint8 or float
            `[H, W, 3]` images, integer labels), a dataset of images only (then the pipeline
            yields images only), or an `(images, labels)` pair of numpy arrays.
        training: Training pipeline (shuffle, random preprocessing, augmentation, mixing) or
            evaluation pipeline (deterministic preprocessing, in order, remainder kept).
        batch_size: Examples per batch.
        image_size: Side of the square output images.
        num_classes: Number of classes (for one-hot labels).
        preprocessing: `"cifar"`, `"imagenet"` or `"none"` (resize only); see
            `keras_cnn.data.preprocessing`.
        one_hot: float32 one-hot labels instead of int32 class ids (label smoothing, mixing).
        augment: `None` or a list of Keras (or keras-cv) image preprocessing layers applied to
            every training batch in order, e.g. `augment_layers(randaugment=(2, 9))`.
        mixup_alpha: MixUp Beta(alpha, alpha) parameter (Keras' `MixUp`); 0 disables it.
        cutmix_alpha: CutMix alpha in [0, 1] (Keras' `CutMix`); 0 disables it. With both
            positive, each batch gets one of the two with probability 1/2 (timm's choice).
            Mixing needs `one_hot=True` and applies only when `training`.
        shuffle_buffer: Shuffle buffer size; default the whole dataset below 100k examples (or
            unknown size: 10k), 10k otherwise.
        seed: Integer seed of the shuffle and of every random op; `None` draws fresh ones
            (0 under `deterministic`).
        deterministic: In-order elements and sequential batch-level layers, so that the same
            seed gives the same batches (see the module docstring).
        cache: `None` (cache the decoded examples when a `tf.data` source is estimated below 2
            GiB; numpy sources are in memory already), `True`, `False`, or a file path for
            `Dataset.cache(path)`.
        repeat: Repeat the (re-shuffled) data forever; use with `steps_per_epoch`.
        drop_remainder: Drop the last partial batch; default `training`.
        crop_fraction: Evaluation center-crop fraction for `"imagenet"` preprocessing.
        epoch: `None` (tf.data reshuffles and re-seeds on every pass over the data), or an int
            or an int64 `tf.Variable` (see `epoch_variable`): then the shuffle order and every
            per-example random op of a pass are a function of `(seed, epoch)` only, read when
            the pass starts (with `repeat`, passes get `epoch`, `epoch + 1`, ...). A run resumed
            at epoch k by `BackupAndRestore` then sees exactly the data of an uninterrupted run.
            Implies the in-order behaviour of `deterministic`. (Batch-level Keras layers,
            `augment` and mixing, keep their own random state, which a restart resets.)

    Returns:
        The `tf.data.Dataset`: images `[B, image_size, image_size, 3]` float32 in [0, 255];
        labels `[B]` int32, or `[B, num_classes]` float32 when `one_hot`.
    """
    check_bool("training", training)
    check_positive_int("batch_size", batch_size)
    check_positive_int("image_size", image_size)
    check_positive_int("num_classes", num_classes)
    check_choice("preprocessing", preprocessing, KINDS)
    for argument, value in (("one_hot", one_hot), ("deterministic", deterministic), ("repeat", repeat)):
        check_bool(argument, value)
    if augment is not None and (not isinstance(augment, (list, tuple)) or not all(callable(a) for a in augment)):
        raise ValueError(f"`augment` must be None or a list of layers, received augment={augment!r}")
    if shuffle_buffer is not None:
        check_positive_int("shuffle_buffer", shuffle_buffer)
    if seed is not None:
        check_positive_int("seed", seed, minimum=0)
    if epoch is not None and not isinstance(epoch, tf.Variable):
        check_positive_int("epoch", epoch, minimum=0)
    if drop_remainder is not None:
        check_bool("drop_remainder", drop_remainder)
    if cache is not None and not isinstance(cache, (bool, str)):
        raise ValueError(f"`cache` must be None, True, False or a file path, received cache={cache!r}")
    mixup, cutmix = mixing_layers(mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha,
                                  seed=seed if seed is not None else (0 if deterministic else None))
    mixing = training and (mixup is not None or cutmix is not None)

    dataset, has_labels, from_numpy = _from_source(dataset)
    if mixing and not one_hot:
        raise ValueError(
            "MixUp / CutMix mix labels and need one_hot=True, received one_hot=False with "
            f"mixup_alpha={mixup_alpha!r}, cutmix_alpha={cutmix_alpha!r}")
    if not has_labels and (one_hot or mixing):
        raise ValueError("`one_hot`, `mixup_alpha` and `cutmix_alpha` need a dataset with labels, "
                         f"received images only (one_hot={one_hot!r})")
    if (deterministic or epoch is not None) and seed is None:
        seed = _DEFAULT_DETERMINISTIC_SEED
    if drop_remainder is None:
        drop_remainder = training
    parallel = tf.data.AUTOTUNE

    if has_labels and not from_numpy:
        dataset = dataset.map(lambda image, label: (image, tf.cast(label, tf.int32)), num_parallel_calls=parallel)

    # Cache the decoded, unaugmented examples (before any random op).
    if cache is None:
        estimated = None if from_numpy else _estimated_bytes(dataset, has_labels)
        cache = estimated is not None and estimated < CACHE_LIMIT_BYTES
    if isinstance(cache, str):
        dataset = dataset.cache(cache)
    elif cache:
        dataset = dataset.cache()

    if training and shuffle_buffer is None:
        count = _cardinality(dataset)
        shuffle_buffer = count if 0 < count < SMALL_DATASET else LARGE_SHUFFLE_BUFFER

    def split(element):
        # Map functions get (image, label) as two arguments, or one image.
        return (element[0], element[1]) if has_labels else (element[0], None)

    def join(image, label):
        return (image, label) if has_labels else image

    def train_map(element, example_seed):
        image, label = split(element if has_labels else (element,))
        return join(preprocess_train(image, size=image_size, kind=preprocessing, seed=example_seed), label)

    if training and epoch is not None:
        def batched(examples):
            return examples.map(train_map, num_parallel_calls=parallel).batch(
                batch_size, drop_remainder=drop_remainder, num_parallel_calls=parallel)

        count = _cardinality(dataset)
        batches = -1 if count < 0 else (count // batch_size if drop_remainder else -(-count // batch_size))
        dataset = _epoch_keyed(dataset, epoch, seed, shuffle_buffer, repeat, batched, batches)
    elif training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        if repeat:
            dataset = dataset.repeat()
        # One stateless seed per example; `seed + 1` so it is not the shuffle's stream.
        seeds = tf.data.Dataset.random(seed=None if seed is None else seed + 1, rerandomize_each_iteration=True)
        dataset = tf.data.Dataset.zip((dataset, seeds.batch(2)))
        dataset = dataset.map(train_map, num_parallel_calls=parallel)
    else:
        if repeat:
            dataset = dataset.repeat()

        def eval_map(*element):
            image, label = split(element)
            return join(preprocess_eval(image, size=image_size, kind=preprocessing, crop_fraction=crop_fraction), label)

        dataset = dataset.map(eval_map, num_parallel_calls=parallel)

    if not (training and epoch is not None):
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=parallel)
    if one_hot:
        dataset = dataset.map(lambda images, labels: (images, tf.one_hot(labels, num_classes, dtype=tf.float32)),
                              num_parallel_calls=parallel)

    # Keras layers keep their random state in a variable: sequential calls in deterministic mode.
    layer_parallel = None if deterministic or epoch is not None else parallel
    if training and augment:
        def augment_batch(*element):
            images, labels = split(element)
            for layer in augment:
                images = tf.cast(layer(images, training=True), tf.float32)
            # The output contract is [0, 255]; interpolating layers may overshoot by rounding.
            return join(tf.clip_by_value(images, 0.0, _PIXEL_MAX), labels)

        dataset = dataset.map(augment_batch, num_parallel_calls=layer_parallel)

    if mixing:
        dataset = _add_mixing(dataset, mixup, cutmix, seed, layer_parallel)

    options = tf.data.Options()
    # Evaluation keeps its order always; training trades order for throughput unless asked.
    options.deterministic = deterministic or epoch is not None or not training
    dataset = dataset.with_options(options)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _add_mixing(dataset, mixup, cutmix, seed, num_parallel_calls):
    def apply(layer, images, labels):
        out = layer({"images": images, "labels": labels}, training=True)
        # lam * 255 + (1 - lam) * 255 can round to 255.00002: clip to keep the [0, 255] contract.
        return tf.clip_by_value(tf.cast(out["images"], tf.float32), 0.0, _PIXEL_MAX), tf.cast(out["labels"], tf.float32)

    if mixup is None or cutmix is None:
        layer = mixup or cutmix
        return dataset.map(lambda images, labels: apply(layer, images, labels), num_parallel_calls=num_parallel_calls)

    # Both: one of them per batch, probability 1/2 each (timm's `switch_prob=0.5`). Both are
    # computed (cheap at batch level) so that no Keras layer is called inside a tf.cond branch.
    choices = tf.data.Dataset.random(seed=None if seed is None else seed + 2, rerandomize_each_iteration=True)

    def mix(batch, choice):
        images, labels = batch
        mixed_up = apply(mixup, images, labels)
        cut = apply(cutmix, images, labels)
        use_mixup = tf.equal(choice % 2, 0)
        return tf.where(use_mixup, mixed_up[0], cut[0]), tf.where(use_mixup, mixed_up[1], cut[1])

    return tf.data.Dataset.zip((dataset, choices)).map(mix, num_parallel_calls=num_parallel_calls)


# Mixes the run seed and the epoch into one shuffle seed (a large odd multiplier keeps the
# per-epoch seeds of different run seeds apart).
_EPOCH_SEED_STRIDE = 1_000_003


def _epoch_keyed(dataset, epoch, seed, shuffle_buffer, repeat, batched, batches):
    """Batched passes whose shuffle and per-example seeds depend on (seed, epoch) only.

    Each epoch is batched on its own (`batched`), so that with `repeat` no batch straddles two
    epochs and epoch k starts at the same example whether or not the run was restarted.
    """

    def current_epoch():
        value = epoch.read_value() if isinstance(epoch, tf.Variable) else tf.constant(epoch)
        return tf.cast(value, tf.int64)

    def one_epoch(index):
        # A shuffle's seed is (graph seed, op seed). Fixing the seed of this traced function's own
        # graph (not the global seed: we are not executing eagerly here) makes the order depend on
        # (seed, epoch) only, whatever `keras.utils.set_random_seed` the program used. It also
        # avoids TF's `get_seed` comparing a tensor op seed to 0 when the global seed is 0.
        tf.random.set_seed(_EPOCH_SEED_STRIDE)
        epoch_seed = seed * _EPOCH_SEED_STRIDE + index
        shuffled = dataset.shuffle(shuffle_buffer, seed=epoch_seed, reshuffle_each_iteration=False)
        # Stateless per-example seed: (epoch seed, position in the epoch).
        return batched(shuffled.enumerate().map(lambda position, element: (element, tf.stack([epoch_seed, position]))))

    def passes(_):
        # Read when a pass over the data starts (a new iterator), not when the pipeline is built.
        start = current_epoch()
        return tf.data.Dataset.range(start, start + (2**62 if repeat else 1))

    epochs = tf.data.Dataset.range(1).flat_map(passes).flat_map(one_epoch)
    if batches >= 0 and not repeat and not isinstance(epoch, tf.Variable):
        # flat_map hides the size; Keras' progress bar wants it. Not with a variable: Keras then
        # creates the next epoch's iterator at the end of the previous epoch, before the
        # callback has set the variable (see `epoch_variable`).
        epochs = epochs.apply(tf.data.experimental.assert_cardinality(batches))
    return epochs


def epoch_variable(initial=0):
    """An int64 `tf.Variable` for `make_pipeline(epoch=...)`, and the callback that sets it.

    Args:
        initial: Starting value.

    Returns:
        `(variable, callback)`: pass `variable` to `make_pipeline(epoch=...)` and `callback` to
        `model.fit(callbacks=[...])`; the callback assigns Keras' epoch index at the start of
        every epoch (after `BackupAndRestore` has restored the run's epoch in `on_train_begin`).

    The pipeline reads the variable when an iterator starts. Two ways to use it with Keras 3's
    `fit`: `make_pipeline(..., repeat=True, epoch=variable)` with `fit(steps_per_epoch=...)`
    (one iterator, created after the first `on_epoch_begin`; passes then follow as
    epoch, epoch + 1, ...), or `repeat=False` (the pipeline's size is then unknown to Keras, so
    `fit` creates each epoch's iterator after `on_epoch_begin`).
    """
    check_positive_int("initial", initial, minimum=0)
    variable = tf.Variable(initial, dtype=tf.int64, trainable=False, name="data_epoch")
    callback = keras.callbacks.LambdaCallback(on_epoch_begin=lambda index, logs=None: variable.assign(index))
    return variable, callback
