"""The `keras-cnn` command line.

    keras-cnn train digits_quickstart                 # offline: trains and prints the test accuracy
    keras-cnn train wrn28_2_cifar10 --set epochs=10 --data-dir ~/tensorflow_datasets
    keras-cnn train mpl_cifar10_4k --set download=True # Meta Pseudo Labels (a recipe's "method")
    keras-cnn recipes                                 # the recipe names and methods
    keras-cnn models 'resnet*'                        # the model zoo with params and GMACs
"""

import argparse
import os
import sys

STRATEGIES = ("auto", "tpu", "multi_worker", "mirrored", "one_device")


def _models(args):
    from keras_cnn.utils.model_table import format_markdown, format_text, table_rows

    rows = table_rows(args.pattern, with_stats=not args.no_stats)
    if not rows:
        print(f"no model matches {args.pattern!r}", file=sys.stderr)
        return 1
    sys.stdout.write(format_markdown(rows) if args.markdown else format_text(rows))
    return 0


def _recipes(args):
    import importlib

    from keras_cnn.training.config import list_recipes

    for name in list_recipes():
        module = importlib.import_module(f"keras_cnn.recipes.{name}")
        doc = (module.__doc__ or "").strip().splitlines()
        method = module.config().get("method", "supervised")
        print(f"{name:34s} {method:14s} {doc[0] if doc else ''}")
    return 0


def _format_results(results, output):
    lines = [f"test accuracy: {100 * results['test_accuracy']:.2f} %  (loss {results['test_loss']:.4f})"]
    if "test_top5_accuracy" in results:
        lines[0] += f", top-5 {100 * results['test_top5_accuracy']:.2f} %"
    if "before_finetune_accuracy" in results:
        lines[0] += f"; before finetuning {100 * results['before_finetune_accuracy']:.2f} %"
    if results.get("already_finished"):
        lines.append(f"{output} is a finished run (results.json); --restart trains it again")
    else:
        # What this command trained: a resumed run counts only the epochs it ran.
        run = results.get("epochs_run", results["epochs"])
        trained = f"{run} epochs"
        if run != results["epochs"]:
            trained += f" (of {results['epochs']}"
            if results.get("resumed_at_epoch"):
                trained += f", resumed at epoch {results['resumed_at_epoch'] + 1}"
            trained += ")"
        saved = [os.path.join(output, "model.keras"), os.path.join(output, "saved_model")]
        if results.get("curves"):
            saved.append(results["curves"])
        lines.append(f"{trained} in {results['train_seconds']:.1f} s; saved {', '.join(saved[:-1])} and {saved[-1]}")
    return "\n".join(lines)


def _train(args):
    import logging

    class Stderr(logging.StreamHandler):
        # sys.stderr at the time of each message (tests and callers swap it).
        stream = property(lambda self: sys.stderr, lambda self, value: None)

    # The job's progress notes (keras_cnn.train INFO: where a run resumed, ...) go to stderr, once.
    logger = logging.getLogger("keras_cnn.train")
    handler = Stderr()
    handler.setFormatter(logging.Formatter("keras-cnn train: %(message)s"))
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        from keras_cnn.training.config import apply_overrides, load_recipe

        try:
            config = apply_overrides(load_recipe(args.recipe), args.set or [])
        except ValueError as error:
            print(f"keras-cnn train: error: {error}", file=sys.stderr)
            return 2
        from keras_cnn.jobs import train
        from keras_cnn.training.callbacks import TrainingDiverged

        output = args.output or os.path.join("runs", args.recipe)
        strategy = args.strategy
        from keras_cnn.distribute.strategy import get_strategy, tpu_address

        # A TPU (the flag, or $TPU_NAME / $KERAS_CNN_TPU) or --strategy tpu is resolved here, so a
        # missing TPU is one line naming the flags, not a traceback from inside the job.
        if args.tpu is not None or args.strategy == "tpu" or (args.strategy == "auto" and tpu_address() is not None):
            try:
                strategy = get_strategy(args.strategy, tpu=args.tpu, flags={"kind": "--strategy", "tpu": "--tpu"})
            except ValueError as error:
                print(f"keras-cnn train: error: {error}", file=sys.stderr)
                return 2
        try:
            results = train(config, output_dir=output, strategy=strategy, data_dir=args.data_dir,
                            verbose=args.verbose, restart=args.restart)
        except TrainingDiverged as error:
            print(f"keras-cnn train: {error}", file=sys.stderr)
            return 3
        except ValueError as error:
            print(f"keras-cnn train: error: {error}", file=sys.stderr)
            return 2
        print(_format_results(results, output))
        return 0
    except KeyboardInterrupt as interrupt:
        # Ctrl-C: one line, no traceback (a TrainingInterrupted says at which epoch); 130 = 128 + SIGINT.
        message = str(interrupt) or "interrupted before training started; run the same command to start it"
        print(f"keras-cnn train: {message}", file=sys.stderr)
        return 130
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def _predict(args):
    from keras_cnn.predict import format_predictions, load_predictor

    try:
        predictor = load_predictor(args.model)
        predictions = predictor(args.images, top=args.top)
    except ValueError as error:
        print(f"keras-cnn predict: error: {error}", file=sys.stderr)
        return 2
    print(format_predictions(predictions))
    return 0


def _export(args):
    from keras_cnn.export import export, format_check

    quantize = None if args.quantize == "none" else args.quantize
    try:
        result = export(args.run_dir, args.format, quantize=quantize, output=args.output, data_dir=args.data_dir)
    except ValueError as error:
        print(f"keras-cnn export: error: {error}", file=sys.stderr)
        return 2
    kind = f"{result.format} ({result.quantize or 'float32'})"
    print(f"exported {kind} to {result.path}")
    print(format_check(result.check))
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-cnn", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    models = sub.add_parser("models", help="list the registered models with params and GMACs")
    models.add_argument("pattern", nargs="?", default=None, help="wildcard filter, e.g. 'resnet*'")
    models.add_argument("--markdown", action="store_true", help="print a markdown table")
    models.add_argument("--no-stats", action="store_true",
                        help="omit the params/GMACs columns (they come from the stored counts)")
    models.set_defaults(func=_models)

    recipes = sub.add_parser("recipes", help="list the training recipes and their methods")
    recipes.set_defaults(func=_recipes)

    train = sub.add_parser("train", help="train a recipe with model.fit (resumes a killed run)")
    train.add_argument("recipe", help="a recipe name (`keras-cnn recipes` lists them)")
    train.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override a config key at any depth (repeatable), e.g. --set epochs=5 "
                            "--set optim.learning_rate=0.2 --set model_args.zero_gamma=False")
    train.add_argument("--strategy", default="auto", choices=STRATEGIES, help="tf.distribute strategy")
    train.add_argument("--tpu", default=None, help="TPU name or grpc:// address (default: $TPU_NAME)")
    train.add_argument("--output", default=None, help="run directory (default: runs/RECIPE)")
    train.add_argument("--data-dir", default=None,
                       help="tfds data directory (Fashion-MNIST: the directory of its four files)")
    train.add_argument("--restart", action="store_true",
                       help="start over: move the previous run in --output aside and delete it first (without "
                            "--restart the same command resumes or reports a run, and refuses one whose config "
                            "differs from its config.json)")
    train.add_argument("--verbose", default="auto", type=lambda v: v if v == "auto" else int(v),
                       help="fit verbosity: auto (progress bar), 0, 1 or 2")
    train.set_defaults(func=_train)

    predict = sub.add_parser("predict", help="top-k classes of image files with a run directory or a .keras model")
    predict.add_argument("model", metavar="RUN_DIR_OR_MODEL",
                         help="a run directory of `keras-cnn train` or a .keras file")
    predict.add_argument("images", metavar="IMAGE", nargs="+", help="image files (PNG, JPEG, GIF, BMP)")
    predict.add_argument("--top", type=int, default=5, help="classes printed per image (default 5)")
    predict.set_defaults(func=_predict)

    export = sub.add_parser("export", help="export a run as TFLite (fp32/int8) or SavedModel, checked on held-out data")
    export.add_argument("run_dir", metavar="RUN_DIR", help="a finished run directory of `keras-cnn train`")
    export.add_argument("--format", default="tflite", choices=("tflite", "saved_model", "onnx"),
                        help="default tflite; onnx needs the `onnx` extra")
    export.add_argument("--quantize", default="none", choices=("none", "int8"),
                        help="int8: full-integer post-training quantization (tflite), calibrated on training images")
    export.add_argument("--output", default=None,
                        help="output path (default RUN_DIR/model.tflite, model_int8.tflite, model.onnx or export/saved_model)")
    export.add_argument("--data-dir", default=None, help="where the run's dataset is (as for `keras-cnn train`)")
    export.set_defaults(func=_export)
    return parser


def main(argv=None):
    # Importing keras_cnn (which this module's package does first) already set this when the
    # process is the command (keras_cnn._startup); a caller that loads TensorFlow later gets it too.
    from keras_cnn._startup import CLI_LOG_LEVEL

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", CLI_LOG_LEVEL)
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
