"""Input pipeline throughput against the model's training throughput, measured in one run.

The question it answers: can `keras_cnn.data.make_pipeline` feed the model faster than the model
trains? Both numbers are images/s on the same data, the same batch size and the same machine,
taken in the same process one after the other:

- pipeline: iterate the training pipeline (`repeat=True`, with the augmentations given) for
  `--pipeline-batches` batches after `--warmup` batches (which fill the prefetch buffer, the
  cache and trace the functions);
- model: `model.train_on_batch` (the step `fit` runs) on `--train-steps` batches taken from the
  same pipeline beforehand, after `--warmup` steps (tracing), so no input work is counted.

The ratio pipeline / model should be >= 2 (`GOAL_RATIO`): then the input pipeline is not the
bottleneck even when the machine is shared or the model gets faster (XLA, mixed precision).

    python tools/pipeline_benchmark.py                                   # digits, 32 px
    python tools/pipeline_benchmark.py --dataset cifar10 --mock --randaugment 2,9 --mixup 0.2
    python tools/pipeline_benchmark.py --model resnet18 --json

`--dataset cifar10 --mock` reads tfds mock data (`tfds.testing.mock_data`, random images) with
the cache forced on, as the real 150 MiB CIFAR-10 would be cached automatically; the measured
pipeline is then the same as on the real data. The model `resnet18_narrow` is the `digits_quickstart`
network: ResNet-18 at a quarter of the width (16-128 channels) with the CIFAR stem.
"""

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_cnn  # noqa: E402
from keras_cnn import data  # noqa: E402
from keras_cnn.utils.argtypes import positive_int  # noqa: E402

GOAL_RATIO = 2.0
DATASETS = ("digits", "cifar10")
NARROW_RESNET18 = "resnet18_narrow"
MOCK_EXAMPLES = 2048


def _pair(text):
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected N,M, received {text!r}")
    return int(parts[0]), float(parts[1])


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=DATASETS, default="digits")
    parser.add_argument("--mock", action="store_true", help="tfds mock data (needed for cifar10 offline)")
    parser.add_argument("--image-size", type=positive_int, default=32)
    parser.add_argument("--batch", type=positive_int, default=128)
    parser.add_argument("--model", default=NARROW_RESNET18, help=f"{NARROW_RESNET18} or a registry name")
    parser.add_argument("--preprocessing", choices=("cifar", "imagenet", "none"), default=None,
                        help="default: the dataset's own")
    parser.add_argument("--randaugment", type=_pair, default=None, metavar="N,M")
    parser.add_argument("--random-erasing", type=float, default=0.0)
    parser.add_argument("--mixup", type=float, default=0.0, help="MixUp alpha")
    parser.add_argument("--cutmix", type=float, default=0.0, help="CutMix alpha")
    parser.add_argument("--pipeline-batches", type=positive_int, default=40)
    parser.add_argument("--train-steps", type=positive_int, default=10)
    parser.add_argument("--warmup", type=positive_int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)
    if args.dataset == "cifar10" and not args.mock:
        parser.error("--dataset cifar10 needs --mock (this tool does not download data)")
    return args


def build_model(name, image_size, num_classes):
    shape = (image_size, image_size, 3)
    if name == NARROW_RESNET18:
        # The digits_quickstart network: CIFAR stem (no stride, no pool), width 16.
        return keras_cnn.ResNet((2, 2, 2, 2), "basic", planes=(16, 32, 64, 128), stem_width=16, stem="cifar",
                                stem_pool=None, input_shape=shape, classes=num_classes, name=NARROW_RESNET18)
    return keras_cnn.create_model(name, input_shape=shape, classes=num_classes)


def _source(args, stack):
    """(unbatched training source, DatasetInfo, cache setting)."""
    info = data.get_dataset_info(args.dataset)
    if args.dataset == "digits":
        (x_train, y_train), _ = data.load_digits(args.image_size)
        return (x_train, y_train), info, None
    import tensorflow_datasets as tfds

    data_dir = stack.enter_context(tempfile.TemporaryDirectory())
    stack.enter_context(tfds.testing.mock_data(num_examples=MOCK_EXAMPLES, policy=tfds.testing.MockPolicy.USE_CODE))
    return data.load(args.dataset, "train", data_dir=data_dir), info, True


def measure(args):
    keras.utils.set_random_seed(args.seed)
    with contextlib.ExitStack() as stack:
        source, info, cache = _source(args, stack)
        augment = data.augment_layers(randaugment=args.randaugment, random_erasing=args.random_erasing, seed=args.seed)
        mixing = args.mixup > 0 or args.cutmix > 0
        pipeline = data.make_pipeline(
            source, training=True, batch_size=args.batch, image_size=args.image_size,
            num_classes=info.num_classes, preprocessing=args.preprocessing or info.preprocessing,
            one_hot=mixing, augment=augment or None, mixup_alpha=args.mixup, cutmix_alpha=args.cutmix,
            seed=args.seed, cache=cache, repeat=True)
        iterator = iter(pipeline)
        for _ in range(args.warmup):
            next(iterator)
        start = time.perf_counter()
        for _ in range(args.pipeline_batches):
            images, _ = next(iterator)
        _ = images.numpy()  # the last batch is really computed
        pipeline_seconds = time.perf_counter() - start
        batches = [tuple(part.numpy() for part in next(iterator)) for _ in range(args.warmup + args.train_steps)]

    model = build_model(args.model, args.image_size, info.num_classes)
    loss = "categorical_crossentropy" if mixing else "sparse_categorical_crossentropy"
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9), loss, jit_compile=False)
    for x, y in batches[:args.warmup]:
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for x, y in batches[args.warmup:]:
        model.train_on_batch(x, y)
    model_seconds = time.perf_counter() - start

    pipeline_rate = args.pipeline_batches * args.batch / pipeline_seconds
    model_rate = args.train_steps * args.batch / model_seconds
    return {
        "dataset": args.dataset,
        "mock": bool(args.mock),
        "image_size": args.image_size,
        "batch_size": args.batch,
        "model": args.model,
        "augment": {"preprocessing": args.preprocessing or info.preprocessing, "randaugment": args.randaugment,
                    "random_erasing": args.random_erasing, "mixup": args.mixup, "cutmix": args.cutmix},
        "pipeline_batches": args.pipeline_batches,
        "train_steps": args.train_steps,
        "pipeline_images_per_s": pipeline_rate,
        "model_images_per_s": model_rate,
        "ratio": pipeline_rate / model_rate,
        "goal_ratio": GOAL_RATIO,
        "goal_met": pipeline_rate / model_rate >= GOAL_RATIO,
        "machine": {"platform": platform.platform(), "logical_cores": os.cpu_count(),
                    "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
                    "devices": [d.device_type for d in tf.config.list_logical_devices()],
                    "tensorflow": tf.__version__, "keras": keras.__version__},
    }


def main(argv=None):
    args = parse_args(argv)
    result = measure(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"dataset {result['dataset']}{' (mock)' if result['mock'] else ''}, {result['image_size']} px, "
              f"batch {result['batch_size']}, augment {result['augment']}")
        print(f"input pipeline : {result['pipeline_images_per_s']:10.1f} images/s")
        print(f"model training : {result['model_images_per_s']:10.1f} images/s ({result['model']})")
        print(f"ratio          : {result['ratio']:10.2f}x (goal >= {GOAL_RATIO:g}x: "
              f"{'met' if result['goal_met'] else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
