"""Recipes: configs as data (keys, paper hyperparameters, overrides) and a smoke run of each recipe."""

import importlib
import json
import re

import keras
import numpy as np
import pytest

from keras_cnn.training import config as config_lib
from keras_cnn.training.schedules import build_schedule, scale_learning_rate

RECIPES = [
    "densenet_bc100_cifar10",
    "digits_quickstart",
    "efficientnet_b0_imagenet",
    "fashion_mnist_resnet18",
    "googlenet_imagenet",
    "resnet50_finetune_cifar10",
    "resnet50d_bag_of_tricks",
    "resnet50d_bag_of_tricks_distill",
    "resnet50d_bag_of_tricks_mixup",
    "squeezenet_imagenet",
    "wrn28_2_cifar10",
]


def test_every_recipe_is_listed():
    supervised = [n for n in config_lib.list_recipes() if config_lib.load_recipe(n)["method"] == "supervised"]
    assert supervised == RECIPES  # the semi-supervised ones: tests/recipes/test_ssl_recipes.py


def recipe_flat_keys(raw):
    """The flat keys a nested recipe dict sets (its sections' fields by their flat names)."""
    where = {path: key for key, path in config_lib.flat_keys(raw.get("method", "supervised")).items()}
    keys = set()
    for key, value in raw.items():
        if key in config_lib.SECTIONS and isinstance(value, dict):
            keys.update(where.get(f"{key}.{field}", f"{key}.{field}") for field in value)
        else:
            keys.add(key)
    return keys


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_is_plain_data_with_a_source(name):
    module = importlib.import_module(f"keras_cnn.recipes.{name}")
    raw = module.config()
    # Recipes are nested (sections); their flat keys (`resolve_config`'s) are the method's keys.
    assert isinstance(raw, dict) and set(raw) <= {"method", "model", "model_args", "weights", *config_lib.SECTIONS}
    assert recipe_flat_keys(raw) <= set(config_lib.defaults_for("supervised"))
    cfg = config_lib.load_recipe(name)
    assert set(cfg) == set(config_lib.defaults_for("supervised"))
    # Every recipe names its source (a paper with its year, or the base recipe it derives from).
    doc = module.__doc__ or ""
    assert re.search(r"(19|20)\d\d", doc) or "bag_of_tricks" in doc, f"{name} docstring names no source"


def test_paper_hyperparameters():
    r50 = config_lib.load_recipe("resnet50d_bag_of_tricks")
    assert scale_learning_rate(r50["learning_rate"], r50["batch_size"], r50["base_batch_size"]) == pytest.approx(0.4)
    assert (r50["epochs"], r50["warmup_epochs"], r50["label_smoothing"], r50["schedule"]) == (120, 5, 0.1, "cosine")
    assert r50["model_args"]["zero_gamma"] and r50["no_bias_decay"] and r50["weight_decay"] == 1e-4

    mixup = config_lib.load_recipe("resnet50d_bag_of_tricks_mixup")
    changed = {k for k in r50 if r50[k] != mixup[k]}
    assert changed == {"mixup_alpha", "epochs"} and (mixup["mixup_alpha"], mixup["epochs"]) == (0.2, 200)

    distill = config_lib.load_recipe("resnet50d_bag_of_tricks_distill")
    changed = {k for k in r50 if r50[k] != distill[k]}
    assert changed == {"teacher"}  # T = 20 and alpha = 0.5 are the defaults, stated in the recipe too
    assert (distill["teacher"], distill["distill_temperature"]) == ("resnet152d", 20.0)

    eff = config_lib.load_recipe("efficientnet_b0_imagenet")
    assert eff["optimizer"] == "rmsprop" and (eff["rho"], eff["momentum"]) == (0.9, 0.9)
    assert eff["model_args"] == {"bn_momentum": 0.99, "drop_path_rate": 0.2, "dropout": 0.2}
    assert eff["weight_decay"] == 1e-5
    assert scale_learning_rate(eff["learning_rate"], 4096, eff["base_batch_size"]) == pytest.approx(0.256)
    # 0.97 every 2.4 epochs: after 24 epochs (past warmup) the rate is 0.256 * 0.97**10.
    steps = 100
    schedule = build_schedule("exponential", 0.256, steps_per_epoch=steps, epochs=eff["epochs"],
                              warmup_epochs=eff["warmup_epochs"], **eff["schedule_args"])
    assert float(schedule(24 * steps)) == pytest.approx(0.256 * 0.97**10, rel=1e-5)

    googlenet = config_lib.load_recipe("googlenet_imagenet")
    assert googlenet["model_args"]["aux_logits"] is True
    # 4 % less every 8 epochs.
    schedule = build_schedule("exponential", 0.08, steps_per_epoch=10, epochs=60, **googlenet["schedule_args"])
    assert float(schedule(80)) == pytest.approx(0.08 * 0.96, rel=1e-5)

    wrn = config_lib.load_recipe("wrn28_2_cifar10")
    schedule = build_schedule("step", 0.1, steps_per_epoch=10, epochs=200, **wrn["schedule_args"])
    assert [float(schedule(e * 10)) for e in (59, 60, 120, 160)] == pytest.approx([0.1, 0.02, 0.004, 0.0008])


def _tiny_classifier():
    inputs = keras.Input((4, 4, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="logits")(x))


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_optimizer_applies_the_papers_l2_weight_decay(name, rng):
    # Every recipe's paper (and its code) decays with an L2 term in the gradient: the optimizer
    # the runner builds from the recipe must step exactly like the same optimizer without decay
    # fed g + wd * w (wd = 0 for the variables no-bias-decay excludes).
    from keras_cnn.distribute.strategy import get_strategy
    from keras_cnn.training import no_decay_variables
    from keras_cnn.training.runner import Phase, _compile

    # No warmup: its near-zero first learning rates would hide the difference between the forms.
    cfg = config_lib.resolve_config({**config_lib.load_recipe(name), "teacher": None, "jit_compile": False,
                                     "warmup_epochs": 0})
    model, reference = _tiny_classifier(), _tiny_classifier()
    reference.set_weights(model.get_weights())
    initial = [np.array(v) for v in model.trainable_variables]
    from keras_cnn.data import get_dataset_info

    info = get_dataset_info(cfg["dataset"])
    trainee, _ = _compile(cfg, model, info, 4, get_strategy("one_device", devices=["/cpu:0"]), one_hot=True,
                          steps_per_epoch=10, phase=Phase("train", 0, cfg["epochs"]))
    optimizer = trainee.optimizer
    assert optimizer.weight_decay == cfg["weight_decay"] > 0
    keras_class = next(c for c in type(optimizer).__mro__ if c.__module__.startswith("keras.src.optimizers."))
    plain = keras_class.from_config({**optimizer.get_config(), "weight_decay": None})
    excluded = {id(v) for v in no_decay_variables(model)} if cfg["no_bias_decay"] else set()
    for _ in range(3):
        grads = [rng.normal(size=v.shape).astype("float32") for v in model.trainable_variables]
        decay = [0.0 if id(v) in excluded else cfg["weight_decay"] for v in model.trainable_variables]
        l2_grads = [g + d * np.array(v) for g, d, v in zip(grads, decay, reference.trainable_variables)]
        optimizer.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in grads], model.trainable_variables))
        plain.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in l2_grads], reference.trainable_variables))
    # Compare the updates, not the weights: a decay of lr * 1e-5 is invisible next to the weights.
    for a, b, w0 in zip(model.trainable_variables, reference.trainable_variables, initial):
        np.testing.assert_allclose(np.array(a) - w0, np.array(b) - w0, rtol=1e-4, atol=1e-9, err_msg=f"{name}: {a.path}")


def test_bag_of_tricks_recipe_augments_and_steps_as_section_2_1():
    # §2.1: Nesterov momentum; hue/saturation/brightness scaled in [0.6, 1.4] (GluonCV's jitter 0.4)
    # and PCA lighting noise N(0, 0.1), after the crop and flip.
    from keras_cnn.training.runner import augment_layers

    cfg = config_lib.load_recipe("resnet50d_bag_of_tricks")
    layers = augment_layers(cfg, seed=0)
    assert [type(layer).__name__ for layer in layers] == ["ColorJitter", "PCALighting"]
    images = np.full((64, 8, 8, 3), 100.0, "float32")
    images[..., 0] = 60.0  # a coloured image: saturation has something to scale
    out = np.asarray(layers[0](images, training=True))
    ratio = out.mean(axis=(1, 2, 3)) / images.mean()
    # The combined factor of brightness x contrast x saturation stays inside [0.6, 1.4]^k, spread out.
    assert ratio.min() < 0.85 and ratio.max() > 1.15 and ratio.min() > 0.6**3 and ratio.max() < 1.4**3
    lit = np.asarray(layers[1](np.full((256, 4, 4, 3), 128.0, "float32"), training=True))
    shift = lit[:, 0, 0, :] - 128.0
    # AlexNet's lighting: the RGB offset's spread is alphastd x the largest eigenvalue (55.46) along
    # the first eigenvector; 256 draws estimate the std within ~15 %.
    assert np.std(shift @ np.array([-0.5675, -0.5808, -0.5836])) == pytest.approx(0.1 * 55.46, rel=0.2)
    assert cfg["nesterov"] is True


def test_googlenet_recipe_trains_aux_heads_with_weight_03():
    from keras_cnn.models.base import AuxiliaryOutputsModel
    from keras_cnn.registry import create_model

    model = create_model("googlenet", classes=10, input_shape=(64, 64, 3),
                         **config_lib.load_recipe("googlenet_imagenet")["model_args"])
    assert isinstance(model, AuxiliaryOutputsModel) and list(model.aux_loss_weights) == [0.3, 0.3]


def test_overrides():
    cfg = config_lib.load_recipe("digits_quickstart")
    new = config_lib.apply_overrides(
        cfg, ["epochs=3", "model=resnet34", "randaugment=(2, 9)", "ema=None", "model_args.zero_gamma=False"]
    )
    assert (new["epochs"], new["model"], new["randaugment"], new["ema"]) == (3, "resnet34", (2, 9), None)
    assert new["model_args"]["zero_gamma"] is False and cfg["model_args"]["zero_gamma"] is True  # no aliasing
    with pytest.raises(ValueError, match=r"unknown config key 'epoch'.*valid keys: \[.*'epochs'"):
        config_lib.apply_overrides(cfg, ["epoch=3"])
    with pytest.raises(ValueError, match="key=value"):
        config_lib.apply_overrides(cfg, ["epochs"])
    with pytest.raises(ValueError, match="dotted"):
        config_lib.apply_overrides(cfg, ["epochs.x=1"])
    with pytest.raises(ValueError, match=r"Unknown recipe 'nope'; valid recipes: \[.*'digits_quickstart'"):
        config_lib.load_recipe("nope")
    with pytest.raises(ValueError, match="unknown config keys"):
        config_lib.resolve_config({"lr": 0.1})


# --- smoke runs: each recipe's real code path for one step on tiny mock data ------------------------------

SMOKE = {
    # recipe: (image_size, extra overrides)
    "digits_quickstart": (16, {}),
    "fashion_mnist_resnet18": (28, {}),
    "wrn28_2_cifar10": (32, {}),
    "densenet_bc100_cifar10": (32, {}),
    "resnet50d_bag_of_tricks": (64, {}),
    "resnet50d_bag_of_tricks_mixup": (64, {}),
    "efficientnet_b0_imagenet": (64, {}),
    "googlenet_imagenet": (64, {}),
    "squeezenet_imagenet": (64, {}),
}


# The smoke runs of these recipes run the traced train step and export saved_model/; the others
# run their one or two steps eagerly and skip the export: tracing and exporting a full-size network
# is ~70 % of such a run (DenseNet-BC-100: 46 s -> 15 s), and those paths are the same code for
# every recipe (the supervised job's other tests trace and export too).
GRAPH_SMOKE = {"digits_quickstart", "fashion_mnist_resnet18"}


def _smoke_config(name, image_size, extra):
    cfg = config_lib.load_recipe(name)
    # Two one-step epochs when the recipe warms up (one warmup step, then its schedule). XLA off:
    # compiling on CPU would dominate the test without exercising anything of the recipe.
    warmup = min(cfg["warmup_epochs"], 1)
    graph = name in GRAPH_SMOKE
    return config_lib.resolve_config({
        **cfg, "image_size": image_size, "batch_size": 2, "steps_per_epoch": 1, "epochs": 1 + bool(warmup),
        "warmup_epochs": warmup, "eval_steps": 1, "validation_freq": 1, "precision": "float32",
        "jit_compile": False, "run_eagerly": not graph, "saved_model": graph, **extra,
    })


def _run_smoke(cfg, tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    from keras_cnn.jobs import train

    with tfds.testing.mock_data(num_examples=4):
        return train(cfg, output_dir=tmp_path / "run", strategy="one_device", verbose=0)


def _check_run(results, tmp_path, cfg):
    run = tmp_path / "run"
    assert np.isfinite(results["test_loss"])
    # eval_steps batches of batch_size images were evaluated: a whole number of them right.
    evaluated = cfg["eval_steps"] * cfg["batch_size"]
    assert results["test_accuracy"] * evaluated == pytest.approx(round(results["test_accuracy"] * evaluated))
    stored = json.loads((run / "results.json").read_text())
    assert (stored["test_accuracy"], stored["test_loss"]) == (results["test_accuracy"], results["test_loss"])
    for artifact in ("model.keras", "results.json", "config.json", "history.csv", "checkpoints/last.weights.h5"):
        assert (run / artifact).exists(), artifact
    assert (run / "saved_model").exists() == cfg["saved_model"]
    if cfg["run_eagerly"]:
        assert results["jit_compile"] is False
    assert not (run / "backup").exists()  # deleted when fit finished
    model = keras.saving.load_model(run / "model.keras", safe_mode=True)
    x = np.zeros((1, cfg["image_size"], cfg["image_size"], 3), "float32")
    from keras_cnn.data import get_dataset_info

    classes = get_dataset_info(cfg["dataset"]).num_classes
    out = model.predict(x, verbose=0)
    assert out.shape == (1, classes) and np.isfinite(out).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMOKE))
def test_recipe_smoke(name, tmp_path):
    image_size, extra = SMOKE[name]
    cfg = _smoke_config(name, image_size, extra)
    results = _run_smoke(cfg, tmp_path)
    _check_run(results, tmp_path, cfg)
    assert results["steps_per_epoch"] == 1 and results["image_size"] == image_size


@pytest.mark.slow
def test_distill_recipe_smoke(tmp_path):
    # The real distillation path with a small teacher saved to a file (the recipe's ResNet-152-D
    # teacher is swapped for ResNet-18-D to keep the test short).
    from keras_cnn.registry import create_model

    teacher = create_model("resnet18d", classes=1000, input_shape=(64, 64, 3), classifier_activation=None)
    path = tmp_path / "teacher.weights.h5"
    teacher.save_weights(path)
    cfg = _smoke_config("resnet50d_bag_of_tricks_distill", 64, {"teacher": "resnet18d", "teacher_weights": str(path)})
    results = _run_smoke(cfg, tmp_path)
    _check_run(results, tmp_path, cfg)


@pytest.mark.slow
def test_finetune_recipe_smoke(tmp_path):
    # The real two-phase path with a pretrained backbone from a file (a narrow ResNet-50 classifier
    # standing in for the ImageNet one, which would need a download); its head is replaced.
    from keras_cnn.registry import create_model

    # 64 px, so that stage 4 is 2x2: at 1x1 a training-mode BN over a batch of 2 has a degenerate
    # gradient (tests/recipes/test_ssl_recipes.py, NARROW_RESNET).
    pretrained = create_model("resnet50", classes=1000, input_shape=(64, 64, 3), stem_width=8,
                              planes=(8, 16, 32, 64))
    path = tmp_path / "pretrained.keras"
    pretrained.save(path)
    cfg = _smoke_config("resnet50_finetune_cifar10", 64, {"backbone": str(path), "freeze_epochs": 1, "epochs": 2})
    results = _run_smoke(cfg, tmp_path)
    _check_run(results, tmp_path, cfg)
    assert (tmp_path / "run" / "frozen_phase" / "phase.weights.h5").exists()


def test_finetune_recipe_hyperparameters():
    cfg = config_lib.load_recipe("resnet50_finetune_cifar10")
    assert (cfg["backbone"], cfg["freeze_epochs"], cfg["trainable_stages"], cfg["train_bn"]) == ("imagenet", 2, "all",
                                                                                                  False)
    assert cfg["unfreeze_learning_rate_factor"] == 0.1 and cfg["image_size"] == 224


def test_distill_without_teacher_weights_is_a_clear_error(tmp_path):
    from keras_cnn.jobs import train

    cfg = config_lib.load_recipe("resnet50d_bag_of_tricks_distill")
    with pytest.raises(ValueError, match="teacher_weights"):
        train(cfg, output_dir=tmp_path / "run")


# --- the typed, nested config ---------------------------------------------------------------------------


def test_config_is_typed_nested_and_frozen():
    import dataclasses

    cfg = config_lib.load_recipe("resnet50d_bag_of_tricks")
    assert isinstance(cfg, config_lib.Config) and isinstance(cfg.optim, config_lib.Optim)
    assert (cfg.optim.name, cfg.optim.learning_rate, cfg.schedule.name, cfg.schedule.epochs) == ("sgd", 0.1, "cosine",
                                                                                               120)
    # Flat keys read the same values: `optimizer` is optim.name, `schedule` schedule.name.
    assert (cfg["optimizer"], cfg["learning_rate"], cfg["schedule"], cfg["epochs"]) == ("sgd", 0.1, "cosine", 120)
    assert config_lib.flat_keys()["distill_alpha"] == "distill.alpha"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.optim.learning_rate = 1.0
    # The nested form round-trips (config.json holds it) and has only the method's sections.
    assert config_lib.resolve_config(cfg.to_dict()) == cfg
    assert set(cfg.to_dict()) == {"method", "model", "model_args", "weights", *cfg.sections}
    assert "mpl" not in cfg.to_dict() and cfg.mpl is None


def test_set_at_any_depth_and_teacher_per_section():
    cfg = config_lib.load_recipe("digits_quickstart")
    new = config_lib.apply_overrides(cfg, ["optim.learning_rate=0.2", "schedule.args.decay_rate=0.9",
                                           "schedule_args.decay_epochs=2", "model_args.stem_width=8",
                                           "run.seed=3"])
    assert (new.optim.learning_rate, new["learning_rate"], new.run.seed) == (0.2, 0.2, 3)
    assert new.schedule.args == {"decay_rate": 0.9, "decay_epochs": 2} and new.model_args["stem_width"] == 8
    assert cfg.optim.learning_rate == 0.4 and cfg.schedule.args == {}  # not modified
    # `teacher` means the section of the method: distill.teacher, mpl.teacher, noisy_student.teacher.
    assert config_lib.apply_overrides(cfg, ["teacher=resnet34"]).distill.teacher == "resnet34"
    mpl = config_lib.apply_overrides(config_lib.load_recipe("digits_mpl"), ["teacher=resnet34", "mpl.uda_weight=8"])
    assert (mpl.mpl.teacher, mpl.mpl.uda_weight, mpl["uda_weight"], mpl.distill) == ("resnet34", 8, 8, None)
    ns = config_lib.resolve_config({"method": "noisy_student", "noisy_student": {"teacher": "resnet50"}})
    assert ns["teacher"] == ns.noisy_student.teacher == "resnet50"


def test_unknown_nested_keys_list_the_valid_ones_with_close_matches():
    cfg = config_lib.load_recipe("digits_quickstart")
    with pytest.raises(ValueError, match=r"unknown config key 'optim.learning_rat'; did you mean "
                                         r"'optim.learning_rate'.*valid keys: \[.*'learning_rate'"):
        config_lib.apply_overrides(cfg, ["optim.learning_rat=0.1"])
    with pytest.raises(ValueError, match=r"unknown config key 'epoch'; did you mean 'epochs'\?"):
        config_lib.apply_overrides(cfg, ["epoch=3"])
    with pytest.raises(ValueError, match=r"unknown config key 'mpl.mu'"):  # no mpl section when supervised
        config_lib.apply_overrides(cfg, ["mpl.mu=3"])
    with pytest.raises(ValueError, match=r"unknown config keys \['optim.lr'\]"):
        config_lib.resolve_config({"optim": {"lr": 0.1}})
    with pytest.raises(ValueError, match=r"schedule.args needs a dict literal"):
        config_lib.apply_overrides(cfg, ["schedule.args=3"])


def test_section_checks_name_the_key():
    with pytest.raises(ValueError, match=r"`batch_size` must be an integer >= 1, received batch_size=0"):
        config_lib.resolve_config({"batch_size": 0}).check()
    with pytest.raises(ValueError, match="teacher_weights"):
        config_lib.resolve_config({"distill": {"teacher": "resnet18"}}).check()
    with pytest.raises(ValueError, match=r"`jit_compile` must be 'auto', True or False"):
        config_lib.resolve_config({"run": {"jit_compile": "yes"}}).check()


def test_derived_recipes_merge_sections():
    base = importlib.import_module("keras_cnn.recipes.resnet50d_bag_of_tricks").config()
    merged = config_lib.merge(base, {"augment": {"mixup_alpha": 0.2}, "schedule": {"epochs": 200}})
    assert merged["schedule"] == {**base["schedule"], "epochs": 200} and base["schedule"]["epochs"] == 120
