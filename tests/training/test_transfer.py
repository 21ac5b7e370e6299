"""Transfer learning: new head, stage-wise freezing, BN kept in inference mode while frozen."""

import keras
import numpy as np
import pytest

import keras_cnn
from keras_cnn.training.transfer import HEAD_PREFIX, backbone_stages, freeze_backbone, transfer_model

NARROW = dict(stem_width=8, planes=(8, 16, 32, 64))


def narrow_classifier():
    return keras_cnn.create_model("resnet18", classes=10, input_shape=(32, 32, 3), **NARROW)


def one_step_changes(model, rng):
    """Which variables (by path) one SGD step on random data changes."""
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=keras.losses.SparseCategoricalCrossentropy(True))
    before = {v.path: v.numpy().copy() for v in model.weights}
    x = rng.uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    model.fit(x, rng.integers(0, 3, 8), batch_size=8, epochs=1, verbose=0)
    return {v.path for v in model.weights if not np.array_equal(before[v.path], v.numpy())}


def test_new_head_replaces_the_old_top_and_shares_the_backbone():
    classifier = narrow_classifier()
    model = transfer_model(classifier, classes=3, dropout=0.2)
    assert model.output.shape == (None, 3)
    assert not any(layer.name == "predictions" for layer in model.layers)
    assert [layer.name for layer in model.layers[-3:]] == [f"{HEAD_PREFIX}{p}" for p in ("pool", "dropout",
                                                                                          "predictions")]
    assert model.get_layer("stage4_block2_out") is classifier.get_layer("stage4_block2_out")


def test_stages_follow_the_stride_levels():
    model = transfer_model(narrow_classifier(), classes=3)
    stages = backbone_stages(model)
    # stem (the weightless stride-1 normalisation joins it), stem pool + stage 1, stages 2-4
    assert [stage[-1].name for stage in stages] == [
        "stem_relu", "stage1_block2_out", "stage2_block2_out", "stage3_block2_out", "stage4_block2_out",
    ]
    assert stages[0][0].name == "input_norm"
    assert all(layer.name.startswith("stage4") for layer in stages[-1])
    assert not any(layer.name.startswith(HEAD_PREFIX) for stage in stages for layer in stage)


def test_frozen_backbone_trains_only_the_head_and_keeps_bn_statistics(rng):
    model = transfer_model(narrow_classifier(), classes=3)
    assert freeze_backbone(model) == []
    changed = one_step_changes(model, rng)
    assert changed == {f"{HEAD_PREFIX}predictions/kernel", f"{HEAD_PREFIX}predictions/bias"}


def test_unfrozen_last_stage_trains_its_convolutions_but_not_its_bn(rng):
    model = transfer_model(narrow_classifier(), classes=3)
    trainable = freeze_backbone(model, trainable_stages=1)
    assert trainable and all(name.startswith("stage4") and "bn" not in name for name in trainable)
    changed = one_step_changes(model, rng)
    backbone_changed = {path for path in changed if not path.startswith(HEAD_PREFIX)}
    expected = {v.path for v in model.weights if v.path.startswith("stage4") and "_bn/" not in v.path}
    assert backbone_changed == expected


def test_train_bn_updates_statistics_of_unfrozen_stages_only(rng):
    model = transfer_model(narrow_classifier(), classes=3)
    freeze_backbone(model, trainable_stages=1, train_bn=True)
    changed = one_step_changes(model, rng)
    stage4_bn = {v.path for v in model.weights if v.path.startswith("stage4") and "_bn/" in v.path}
    assert stage4_bn and stage4_bn <= changed  # gamma, beta and the moving statistics
    assert not any(path.startswith(("stage3", "stage1", "stem")) for path in changed)


def test_all_stages_and_refreezing(rng):
    model = transfer_model(narrow_classifier(), classes=3)
    freeze_backbone(model, "all")
    changed = one_step_changes(model, rng)
    convs = {v.path for v in model.weights if "_conv" in v.path and "kernel" in v.path}
    assert convs <= changed
    assert not any("moving_" in path for path in changed)  # BN frozen by default
    freeze_backbone(model, 0)  # back to head only: recompiling picks it up
    assert one_step_changes(model, rng) == {f"{HEAD_PREFIX}predictions/kernel", f"{HEAD_PREFIX}predictions/bias"}


def test_any_family_can_be_a_backbone():
    backbone = keras_cnn.create_model("efficientnet_b0", include_top=False, input_shape=(64, 64, 3))
    model = transfer_model(backbone, classes=5)
    assert model.output.shape == (None, 5)
    assert backbone_stages(model)[-1][-1].name == "top_swish"


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m: freeze_backbone(m, -1), r"`trainable_stages` must be 'all' or an int >= 0, received "
                                            r"trainable_stages=-1"),
        (lambda m: freeze_backbone(m, 6), r"at most the 5 stages.*received trainable_stages=6"),
        (lambda m: freeze_backbone(m, 1, train_bn="yes"), r"`train_bn` must be a bool"),
        (lambda m: transfer_model(m, classes=0), r"classes"),
        (lambda m: transfer_model(m, classes=3, dropout=1.0), r"`dropout` must be a float in \[0, 1\)"),
        (lambda m: transfer_model(m, classes=3, pooling="sum"), r"`pooling` must be 'avg' or 'max'"),
        (lambda m: transfer_model("resnet18", classes=3), r"`backbone` must be a keras.Model"),
    ],
)
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call(transfer_model(narrow_classifier(), classes=3))


# --- the runner's fine-tuning phases (keras-cnn train with a `backbone`) ----------------------------------


def _pretrained_digits_backbone(path):
    """A narrow CIFAR-stem ResNet-18 'pretrained' elsewhere (random here), saved as a .keras file."""
    model = keras_cnn.create_model("resnet18", classes=7, input_shape=(16, 16, 3), stem="cifar", stem_pool=None,
                                   **NARROW)
    model.save(path)
    return model


def _finetune_config(backbone, **overrides):
    from keras_cnn.training import config as config_lib

    return config_lib.resolve_config({
        "model": "resnet18", "dataset": "digits", "image_size": 16, "preprocessing": "none", "backbone": backbone,
        "freeze_epochs": 1, "epochs": 2, "trainable_stages": 1, "batch_size": 32, "steps_per_epoch": 2,
        "learning_rate": 0.4, "validation_freq": 0, "jit_compile": False, "deterministic": True, **overrides,
    })


def test_runner_trains_the_head_then_the_unfrozen_stage(tmp_path):
    from keras_cnn.jobs import train

    source = _pretrained_digits_backbone(tmp_path / "pretrained.keras")
    run = tmp_path / "run"
    results = train(_finetune_config(str(tmp_path / "pretrained.keras")), output_dir=run, verbose=0)
    assert results["epochs"] == 2 and np.isfinite(results["test_accuracy"])

    def backbone_weights(model):
        return {w.path: w.numpy() for w in model.weights if not w.path.startswith((HEAD_PREFIX, "predictions"))}

    original = backbone_weights(source)
    frozen = keras_cnn.create_model("resnet18", classes=7, input_shape=(16, 16, 3), stem="cifar", stem_pool=None,
                                    **NARROW)
    frozen = transfer_model(frozen, classes=10, name="resnet18_transfer")
    frozen.load_weights(run / "frozen_phase" / "phase.weights.h5")
    after_frozen = backbone_weights(frozen)
    assert set(original) == set(after_frozen) and original
    assert all(np.array_equal(original[k], after_frozen[k]) for k in original)  # phase 1: head only

    final = backbone_weights(keras.saving.load_model(run / "model.keras", safe_mode=True))
    changed = {k for k in original if not np.array_equal(original[k], final[k])}
    expected = {k for k in original if k.startswith("stage4") and "_bn/" not in k}
    assert changed == expected  # phase 2: the last stage's convolutions; every BN kept frozen


@pytest.mark.slow
def test_runner_resumes_in_the_unfrozen_phase_without_redoing_the_frozen_one(tmp_path, monkeypatch):
    from keras_cnn import jobs
    from keras_cnn.training import runner

    _pretrained_digits_backbone(tmp_path / "pretrained.keras")
    # Whole passes over the data (steps_per_epoch=None): deterministic resume is keyed by epoch.
    cfg = _finetune_config(str(tmp_path / "pretrained.keras"), epochs=3, steps_per_epoch=None, batch_size=128)
    run = tmp_path / "run"
    jobs.train(cfg, output_dir=tmp_path / "reference", verbose=0)

    class Killed(Exception):
        pass

    class KillAtEpoch3(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise Killed

    real = runner.fit_callbacks

    def with_kill(*args, **kwargs):
        guard, backup, callbacks = real(*args, **kwargs)
        return guard, backup, callbacks + [KillAtEpoch3()]

    monkeypatch.setattr(runner, "fit_callbacks", with_kill)
    with pytest.raises(Killed):
        jobs.train(cfg, output_dir=run, verbose=0)
    monkeypatch.undo()
    frozen_history = (run / "frozen_phase" / "history.csv").read_text()
    results = jobs.train(cfg, output_dir=run, verbose=0)
    assert (run / "frozen_phase" / "history.csv").read_text() == frozen_history  # not trained again
    assert results["resumed_at_epoch"] == 2
    history = (run / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["1", "2"]  # phase 2's epochs, each once
    resumed = keras.saving.load_model(run / "model.keras", safe_mode=True)
    uninterrupted = keras.saving.load_model(tmp_path / "reference" / "model.keras", safe_mode=True)
    for a, b in zip(resumed.weights, uninterrupted.weights):  # deterministic: as if never killed
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"backbone": None, "freeze_epochs": 1}, r"`freeze_epochs` applies when fine-tuning a pretrained `backbone`"),
        ({"freeze_epochs": 2}, r"`freeze_epochs` must be an int in \[0, epochs=2\), received freeze_epochs=2"),
        ({"trainable_stages": "some"}, r"`trainable_stages` must be 'all' or an int >= 0"),
        ({"unfreeze_learning_rate_factor": 0}, r"`unfreeze_learning_rate_factor` must be a positive number"),
        ({"weights": "imagenet"}, r"Set either `weights` or `backbone`"),
        ({"backbone": "missing.keras"}, r"`backbone` file not found: 'missing.keras'"),
    ],
)
def test_runner_refuses_bad_finetune_configs(overrides, match, tmp_path):
    from keras_cnn.jobs import train

    cfg = _finetune_config(**{"backbone": str(tmp_path / "pretrained.keras"), **overrides})
    with pytest.raises(ValueError, match=match):
        train(cfg, output_dir=tmp_path / "run", verbose=0)
