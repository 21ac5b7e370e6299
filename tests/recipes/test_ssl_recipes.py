"""Semi-supervised recipes (`"method": "mpl"` / `"noisy_student"`): pinned paper values, method keys,
one-step smoke runs on tfds mock data, and resume of an interrupted MPL run."""

import importlib
import json
import re

import keras
import numpy as np
import pytest
from test_recipes import recipe_flat_keys

from keras_cnn import cli
from keras_cnn.training import config as config_lib
from keras_cnn.training.schedules import scale_learning_rate

SSL_RECIPES = {
    "digits_mpl": "mpl",
    "mpl_cifar10_4k": "mpl",
    "mpl_imagenet_10pct": "mpl",
    "mpl_svhn_1k": "mpl",
    "noisy_student_efficientnet_b0": "noisy_student",
}


def test_ssl_recipes_are_listed_with_their_method():
    names = config_lib.list_recipes()
    for name, method in SSL_RECIPES.items():
        assert name in names
        module = importlib.import_module(f"keras_cnn.recipes.{name}")
        raw = module.config()
        # Nested recipes (sections); their flat keys are the method's keys.
        assert set(raw) <= {"method", "model", "model_args", "weights", *config_lib.SECTIONS}
        assert raw["method"] == method and recipe_flat_keys(raw) <= set(config_lib.defaults_for(method))
        assert set(config_lib.load_recipe(name)) == set(config_lib.defaults_for(method))
        assert re.search(r"(19|20)\d\d", module.__doc__ or ""), f"{name} docstring names no source"
    # Every other recipe is supervised and keeps exactly the supervised keys.
    for name in set(names) - set(SSL_RECIPES):
        assert config_lib.load_recipe(name)["method"] == "supervised"


def test_recipes_command_shows_the_method(capsys):
    assert cli.main(["recipes"]) == 0
    lines = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert lines["mpl_cifar10_4k"] == "mpl" and lines["noisy_student_efficientnet_b0"] == "noisy_student"
    assert lines["digits_quickstart"] == "supervised"


def test_mpl_cifar10_4k_hyperparameters():
    # google-research/meta_pseudo_labels README (CIFAR-10-4000 command) + flag_utils.py defaults.
    cfg = config_lib.load_recipe("mpl_cifar10_4k")
    assert (cfg["model"], cfg["teacher"]) == ("wrn_28_2", None) and cfg["model_args"]["dropout"] == 0.2
    assert (cfg["dataset"], cfg["ssl_split"], cfg["image_size"]) == ("cifar10", "cifar10_4k", 32)
    assert cfg["epochs"] * cfg["steps_per_epoch"] == 300_000  # num_train_steps
    assert (cfg["batch_size"], cfg["mu"]) == (128, 7)  # train_batch_size, uda_data
    assert (cfg["optimizer"], cfg["momentum"], cfg["nesterov"], cfg["schedule"]) == ("sgd", 0.9, True, "cosine")
    # mpl_student_lr = mpl_teacher_lr = 0.1 per 256 labeled images: 0.05 at batch 128.
    assert scale_learning_rate(cfg["learning_rate"], cfg["batch_size"], cfg["base_batch_size"]) == pytest.approx(0.05)
    assert scale_learning_rate(cfg["teacher_learning_rate"], cfg["batch_size"], cfg["base_batch_size"]) == \
        pytest.approx(0.05)
    steps = cfg["steps_per_epoch"]
    assert cfg["warmup_epochs"] * steps == cfg["teacher_warmup_epochs"] * steps == 5000  # *_lr_warmup_steps
    assert cfg["student_wait_epochs"] * steps == 3000  # mpl_student_lr_wait_steps
    assert (cfg["weight_decay"], cfg["label_smoothing"], cfg["ema"]) == (5e-4, 0.15, 0.995)
    assert (cfg["uda_weight"], cfg["uda_temperature"], cfg["uda_threshold"]) == (8.0, 0.7, 0.6)
    assert cfg["uda_ramp_epochs"] * steps == 5000  # uda_steps
    assert cfg["global_clipnorm"] is None and cfg["pseudo_labels"] == "sample"  # grad_bound=1e9: no clipping
    assert cfg["randaugment"] == (2, 10)  # augment_magnitude=16, capped at the 0-10 scale's maximum
    assert cfg["finetune_steps"] > 0 and cfg["finetune_learning_rate"] == 3e-5


def test_mpl_svhn_1k_is_the_cifar_recipe_on_svhn():
    cifar, svhn = config_lib.load_recipe("mpl_cifar10_4k"), config_lib.load_recipe("mpl_svhn_1k")
    assert {k for k in cifar if cifar[k] != svhn[k]} == {"dataset", "ssl_split"}
    assert (svhn["dataset"], svhn["ssl_split"]) == ("svhn", "svhn_1k")


def test_mpl_imagenet_10pct_hyperparameters():
    # google-research/meta_pseudo_labels README (ImageNet-10% command).
    cfg = config_lib.load_recipe("mpl_imagenet_10pct")
    assert (cfg["model"], cfg["model_args"]["dropout"], cfg["image_size"]) == ("resnet50", 0.1, 224)
    assert (cfg["dataset"], cfg["ssl_split"]) == ("imagenet", "imagenet_10pct")
    assert cfg["epochs"] * cfg["steps_per_epoch"] == 700_000
    assert (cfg["batch_size"], cfg["mu"]) == (1024, 15)
    assert scale_learning_rate(cfg["learning_rate"], 1024, cfg["base_batch_size"]) == pytest.approx(0.4)
    assert scale_learning_rate(cfg["teacher_learning_rate"], 1024, cfg["base_batch_size"]) == pytest.approx(0.6)
    steps = cfg["steps_per_epoch"]
    assert (cfg["warmup_epochs"] * steps, cfg["teacher_warmup_epochs"] * steps) == (5000, 5000)
    assert cfg["student_wait_epochs"] * steps == 20_000
    assert (cfg["weight_decay"], cfg["label_smoothing"], cfg["ema"], cfg["global_clipnorm"]) == (1e-4, 0.1, 0.999, 5.0)
    assert (cfg["uda_weight"], cfg["uda_temperature"], cfg["uda_threshold"]) == (20.0, 0.5, 0.6)
    assert cfg["uda_ramp_epochs"] * steps == 50_000  # uda_steps


@pytest.mark.parametrize("name,activation", [("mpl_cifar10_4k", "leaky_relu"), ("mpl_imagenet_10pct", "relu")])
def test_mpl_networks_are_the_releases(name, activation):
    # modeling_utils.py: WRN blocks use leaky ReLU 0.2, ResNet-50 blocks plain ReLU (leaky=0.);
    # batch norm with flag_utils' batch_norm_decay=0.99 and batch_norm_epsilon=1e-3.
    from keras_cnn.registry import create_model

    cfg = config_lib.load_recipe(name)
    args = {**cfg["model_args"], **({"stem_width": 8, "planes": (8, 16, 32, 64)} if name.endswith("10pct") else {})}
    model = create_model(cfg["model"], classes=10, input_shape=(32, 32, 3), **args)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all((layer.momentum, layer.epsilon) == (0.99, 1e-3) for layer in norms)
    acts = [layer for layer in model.layers if isinstance(layer, keras.layers.Activation)]
    slopes = {round(float(layer(keras.ops.convert_to_tensor([-1.0]))[0]), 6) for layer in acts}  # float32 -0.2
    assert slopes == ({-0.2} if activation == "leaky_relu" else {0.0})


def test_noisy_student_efficientnet_b0_hyperparameters():
    # Xie et al. 2020 §3 and google-research/noisystudent (main.py flags, local_scripts/imagenet).
    cfg = config_lib.load_recipe("noisy_student_efficientnet_b0")
    base = config_lib.load_recipe("efficientnet_b0_imagenet")
    assert cfg["teacher"] is None and cfg["model"] == "efficientnet_b0"  # round 0: a B0 teacher
    assert tuple(cfg["student_models"]) == ("efficientnet_b0", "efficientnet_b1")  # equal or larger
    assert cfg["model_args"] == {"bn_momentum": 0.99, "drop_path_rate": 0.2, "dropout": 0.5}  # student noise
    assert cfg["randaugment"] == (2, 9)  # magnitude 27 of 30
    assert (cfg["pseudo_label_mode"], cfg["pseudo_label_threshold"], cfg["balance_classes"]) == ("soft", 0.3, True)
    assert cfg["unlabeled"] == "train_images"  # JFT is not public: documented default
    # base_learning_rate 0.016 per 256, batch 4096; train_ratio 2 for B0: 700 epochs, decay every 4.8.
    assert scale_learning_rate(cfg["learning_rate"], 256, cfg["base_batch_size"]) == pytest.approx(0.016)
    assert (cfg["batch_size"], cfg["epochs"], cfg["schedule_args"]["decay_epochs"]) == (4096, 700, 4.8)
    # Each model at its own resolution (main.py's input_image_size default): B0 224, B1 240.
    assert (cfg["image_size"], tuple(cfg["student_image_sizes"])) == (224, (224, 240))
    for key in ("optimizer", "rho", "momentum", "epsilon", "weight_decay", "label_smoothing", "ema", "image_size"):
        assert cfg[key] == base[key], key


def test_bad_method_is_a_value_error_naming_the_key():
    with pytest.raises(ValueError, match=r"`method` must be one of \['supervised', 'mpl', 'noisy_student'\], "
                                         r"received method='mlp'"):
        config_lib.resolve_config({"method": "mlp"})
    cfg = config_lib.load_recipe("digits_quickstart")
    with pytest.raises(ValueError, match="`method`.*received method='semi'"):
        config_lib.apply_overrides(cfg, ["method=semi"])


def test_keys_unknown_to_the_method_are_rejected():
    mpl = config_lib.load_recipe("mpl_cifar10_4k")
    with pytest.raises(ValueError, match=r"unknown config key 'mixup_alpha' for method 'mpl'"):
        config_lib.apply_overrides(mpl, ["mixup_alpha=0.2"])
    with pytest.raises(ValueError, match=r"unknown config keys \['rounds'\] for method 'mpl'"):
        config_lib.resolve_config({"method": "mpl", "rounds": 2})
    supervised = config_lib.load_recipe("digits_quickstart")
    with pytest.raises(ValueError, match=r"unknown config key 'mu';"):
        config_lib.apply_overrides(supervised, ["mu=7"])
    # Switching the method first makes its keys valid, whatever the order on the command line.
    switched = config_lib.apply_overrides(supervised, ["mu=3", "method=mpl", "ssl_split=digits_100"])
    assert (switched["method"], switched["mu"], switched["model"]) == ("mpl", 3, supervised["model"])
    assert "mixup_alpha" not in switched
    with pytest.raises(ValueError, match="unknown config key"):
        cli_config = config_lib.load_recipe("mpl_cifar10_4k")
        config_lib.apply_overrides(cli_config, ["distill_alpha=0.5"])


def test_cli_rejects_a_key_the_method_does_not_know(capsys, tmp_path):
    assert cli.main(["train", "mpl_cifar10_4k", "--output", str(tmp_path), "--set", "cutmix_alpha=1.0"]) == 2
    assert "cutmix_alpha" in capsys.readouterr().err


def test_mpl_needs_a_matching_split(tmp_path):
    from keras_cnn.jobs import train

    base = config_lib.load_recipe("digits_mpl")
    with pytest.raises(ValueError, match="needs `ssl_split`"):
        train({**base, "ssl_split": None}, output_dir=tmp_path / "a")
    with pytest.raises(ValueError, match="`ssl_split`='cifar10_4k' draws from dataset 'cifar10'"):
        train({**base, "ssl_split": "cifar10_4k"}, output_dir=tmp_path / "b")
    with pytest.raises(ValueError, match="`student_wait_epochs` must be smaller"):
        train({**base, "student_wait_epochs": base["epochs"]}, output_dir=tmp_path / "c")


def test_noisy_student_refuses_more_images_than_memory_allows(tmp_path):
    from keras_cnn.jobs import train

    cfg = {"method": "noisy_student", "dataset": "digits", "image_size": 8, "max_in_memory_gb": 1e-6}
    with pytest.raises(ValueError, match="max_in_memory_gb=1e-06"):
        train(cfg, output_dir=tmp_path / "run")
    with pytest.raises(ValueError, match="`unlabeled` must be"):
        train({**cfg, "max_in_memory_gb": 16.0, "unlabeled": "/no/such/dir"}, output_dir=tmp_path / "run2")


# --- smoke runs: each SSL recipe's real code path for a step or two on tiny mock data --------------------

TINY_MPL = {
    "batch_size": 2, "mu": 1, "steps_per_epoch": 1, "epochs": 2, "warmup_epochs": 0, "teacher_warmup_epochs": 0,
    "student_wait_epochs": 1, "finetune_steps": 1, "finetune_batch_size": 2, "eval_steps": 1, "validation_freq": 1,
    "labels_per_class": 1, "precision": "float32", "jit_compile": False,
}
# Narrow ResNets for the ImageNet recipe (ResNet-50 at width 8): its code path, not its size.
# At 64 px, not 32: at 32 px stage 4 is 1x1, so a training-mode BN normalises each channel over the
# batch's 2 values, and its gradient scales with 1 / sqrt(variance of 2 near-equal numbers). The
# one finetuning step (SGD at 3e-5) then moved BN betas by up to 0.46 and the test loss went from
# 6.9 to 1e6, or to NaN (runs differ: oneDNN's reductions are not bit-reproducible); at 64 px
# (stage 4 at 2x2) the largest change was 1e-3 and the loss stayed at 6.8-7.1 over seeds 0-5.
NARROW_RESNET = {"stem_width": 8, "planes": (8, 16, 32, 64)}
SMOKE = {
    "mpl_cifar10_4k": {**TINY_MPL},
    "mpl_svhn_1k": {**TINY_MPL},
    "mpl_imagenet_10pct": {**TINY_MPL, "image_size": 64, "labels_per_class": 0.5,
                           "model_args": {"dropout": 0.1, **NARROW_RESNET}},
    "digits_mpl": {**TINY_MPL, "labels_per_class": None},
    "noisy_student_efficientnet_b0": {
        "image_size": 32, "batch_size": 4, "epochs": 1, "warmup_epochs": 0, "rounds": 1, "eval_steps": 1,
        "student_models": ("efficientnet_b0",), "student_image_sizes": (40,), "precision": "float32",
        "jit_compile": False,
    },
}


# As the supervised smoke runs (tests/recipes/test_recipes.py): digits_mpl traces its steps and
# exports saved_model/, the full-size recipes run their few steps eagerly and skip the export.
# mpl_imagenet_10pct is traced too, so that a multi-stage job's export is covered at full depth.
GRAPH_SMOKE = {"digits_mpl", "mpl_imagenet_10pct"}


def _run(name, tmp_path, **overrides):
    from keras_cnn.jobs import train

    graph = {"run_eagerly": name not in GRAPH_SMOKE, "saved_model": name in GRAPH_SMOKE}
    cfg = config_lib.resolve_config({**config_lib.load_recipe(name), **SMOKE[name], **graph, **overrides})
    if cfg["dataset"] == "digits":
        return cfg, train(cfg, output_dir=tmp_path / "run", verbose=0)
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=12):
        return cfg, train(cfg, output_dir=tmp_path / "run", verbose=0)


def _check_artifacts(run, cfg, results):
    stored = json.loads((run / "results.json").read_text())
    assert np.isfinite(results["test_loss"]) and (stored["test_accuracy"], stored["test_loss"]) == (
        results["test_accuracy"], results["test_loss"])
    # eval_steps batches of batch_size test images: a whole number of them right.
    evaluated = cfg["eval_steps"] * cfg["batch_size"]
    assert results["test_accuracy"] * evaluated == pytest.approx(round(results["test_accuracy"] * evaluated))
    for artifact in ("model.keras", "config.json"):
        assert (run / artifact).exists(), artifact
    assert (run / "saved_model").exists() == cfg["saved_model"]
    model = keras.saving.load_model(run / "model.keras", safe_mode=True)
    size = results["image_size"]
    out = model.predict(np.zeros((1, size, size, 3), "float32"), verbose=0)
    classes = 1000 if cfg["dataset"] == "imagenet" else 10
    assert out.shape == (1, classes) and np.isfinite(out).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(n for n, m in SSL_RECIPES.items() if m == "mpl"))
def test_mpl_recipe_smoke(name, tmp_path):
    cfg, results = _run(name, tmp_path)
    run = tmp_path / "run"
    _check_artifacts(run, cfg, results)
    for artifact in ("history.csv", "checkpoints/last.weights.h5", "mpl_student.weights.h5", "finetune_history.csv"):
        assert (run / artifact).exists(), artifact
    assert not (run / "backup").exists()  # deleted when fit finished
    # Two MPL steps, the first with the student waiting (learning rate 0), then one finetuning step.
    assert (results["teacher_steps"], results["student_steps"], results["student_wait_steps"]) == (2, 2, 1)
    assert results["finetune_steps"] == 1 and "before_finetune_accuracy" in results
    assert results["unlabeled_batch"] == cfg["mu"] * cfg["batch_size"]


@pytest.mark.slow
def test_noisy_student_recipe_smoke(tmp_path):
    cfg, results = _run("noisy_student_efficientnet_b0", tmp_path)
    run = tmp_path / "run"
    _check_artifacts(run, cfg, results)
    assert [r["round"] for r in results["rounds"]] == [0, 1]  # the B0 teacher, then one student round
    stored = json.loads((run / "rounds" / "round_1" / "metrics.json").read_text())
    teacher, student = results["rounds"]
    assert student["num_pseudo_labeled"] == stored["num_pseudo_labeled"]
    # The student's schedule is sized from what it trained on (labeled + filtered, balanced
    # pseudo-labeled images), not from the unlabeled set's size.
    trained_on = student["num_labeled"] + student["num_pseudo_labeled"]
    assert student["steps_per_epoch"] == -(-trained_on // cfg["batch_size"])
    # The teacher at image_size, the student at its own size (student_image_sizes).
    assert (teacher["image_size"], student["image_size"], results["image_size"]) == ([32, 32], [40, 40], 40)
    assert keras.saving.load_model(run / "model.keras").input_shape == (None, 40, 40, 3)


# --- resume ------------------------------------------------------------------------------------------------


class _Interrupt(Exception):
    pass


@pytest.mark.slow
def test_interrupted_mpl_run_resumes_from_its_checkpoints(tmp_path, monkeypatch):
    from keras_cnn.jobs import train
    from keras_cnn.ssl import runner as ssl_runner

    cfg = config_lib.resolve_config({**config_lib.load_recipe("digits_mpl"), **SMOKE["digits_mpl"],
                                     "epochs": 3, "student_wait_epochs": 0, "validation_freq": 0})
    run = tmp_path / "run"
    real_callbacks = ssl_runner.fit_callbacks

    class StopAtEpoch2(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise _Interrupt  # as a kill after epoch 2's backup

    def interrupted(*args, **kwargs):
        guard, backup, callbacks = real_callbacks(*args, **kwargs)
        return guard, backup, callbacks + [StopAtEpoch2()]

    monkeypatch.setattr(ssl_runner, "fit_callbacks", interrupted)
    with pytest.raises(_Interrupt):
        train(cfg, output_dir=run, verbose=0)
    assert (run / "backup").exists() and (run / "checkpoints" / "last.weights.h5").exists()
    assert not (run / "results.json").exists()
    assert json.loads((run / "backup" / "training_metadata.json").read_text())["epoch"] == 2

    # Killed during finetuning: the MPL stage must not be trained again.
    monkeypatch.setattr(ssl_runner, "fit_callbacks", real_callbacks)

    def broken_finetune(*args, **kwargs):
        raise _Interrupt

    monkeypatch.setattr(ssl_runner, "finetune_student", broken_finetune)
    with pytest.raises(_Interrupt):
        train(cfg, output_dir=run, verbose=0)
    assert (run / "mpl_student.weights.h5").exists() and not (run / "results.json").exists()
    assert not (run / "backup").exists()  # fit finished: its backup is no longer needed

    monkeypatch.undo()
    results = train(cfg, output_dir=run, verbose=0)
    assert results["mpl_stage_resumed"] is True and (run / "results.json").exists()
    history = (run / "history.csv").read_text().strip().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["0", "1", "2"]  # epoch 3 trained after the resume
