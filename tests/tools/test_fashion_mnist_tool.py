"""tools/fashion_mnist.py: time to accuracy from a run's history.csv, and the table."""

import json

import pytest
from conftest import load_tool


@pytest.fixture(scope="module")
def tool():
    return load_tool("fashion_mnist")


def _fake_run(directory, accuracies, seconds=60.0):
    directory.mkdir()
    rows = ["epoch,accuracy,epoch_seconds,loss,train_seconds,val_accuracy,val_loss"]
    for epoch, accuracy in enumerate(accuracies):
        rows.append(f"{epoch},0.9,{seconds},0.5,{seconds * (epoch + 1)},{accuracy},0.4")
    (directory / "history.csv").write_text("\n".join(rows) + "\n")
    (directory / "results.json").write_text(json.dumps({
        "recipe_model": "resnet18", "test_accuracy": accuracies[-1], "test_loss": 0.4, "epochs": len(accuracies),
        "train_seconds": seconds * len(accuracies) + 5, "precision": "float32"}))
    (directory / "config.json").write_text(json.dumps({"model": "resnet18", "model_args": {"planes": [16, 32]},
                                                       "seed": 0}))
    return str(directory)


def test_time_to_accuracy_is_the_first_epoch_at_the_target(tool, tmp_path):
    run = _fake_run(tmp_path / "a", [0.80, 0.929, 0.931, 0.925, 0.94])
    summary = tool.summarise_run(run, 0.93)
    # Epoch 3 (1-based) is the first at >= 93 %; its training time excludes validation.
    assert (summary["target_epoch"], summary["target_seconds"]) == (3, 180.0)
    assert summary["test_accuracy"] == 0.94 and summary["train_seconds"] == 305.0
    never = tool.summarise_run(_fake_run(tmp_path / "b", [0.8, 0.9]), 0.93)
    assert never["target_epoch"] is None and never["target_seconds"] is None


def test_summary_table_and_json(tool, tmp_path):
    runs = [_fake_run(tmp_path / "a", [0.9, 0.94]), _fake_run(tmp_path / "b", [0.91, 0.92])]
    out, table = tmp_path / "r.json", tmp_path / "r.md"
    assert tool.main(["--run", runs[0], "--run", runs[1], "--json", str(out), "--markdown", str(table)]) == 0
    result = json.loads(out.read_text())
    assert result["reached_target"] == 1 and result["test_accuracy"]["mean"] == pytest.approx(0.93)
    text = table.read_text()
    assert "| 94.00 | 2.0 | 2.1 | 2.0 (epoch 2) |" in text and "not reached" in text
    assert "| ResNet-18 (public benchmark table) | 94.9 |" in text
    with pytest.raises(SystemExit):
        tool.parse_args(["--target", "93"])


# keras_cnn's fast paths: grouped convolutions (a narrow ResNeXt with SE), SiLU and depthwise (EfficientNet).
COPY_MODELS = {
    "resnext50_32x4d": dict(stem_width=8, depths=(1, 1, 1, 1), planes=(16, 16, 16, 16), groups=4, base_width=16,
                            se_ratio=0.25),
    "efficientnet_b0": {},
}


@pytest.mark.parametrize("name", sorted(COPY_MODELS))
def test_plain_keras_copy_has_only_keras_layers_and_the_same_outputs(tool, rng, name):
    import keras
    import numpy as np

    from keras_cnn.registry import create_model

    model = create_model(name, classes=5, input_shape=(32, 32, 3), **COPY_MODELS[name])
    assert {type(layer).__module__.split(".")[0] for layer in model.layers} >= {"keras", "keras_cnn"}
    copy = tool.plain_keras_copy(model)
    modules = {type(layer).__module__.split(".")[0] for layer in copy.layers}
    assert modules == {"keras"}, modules
    assert [layer.name for layer in copy.layers] == [layer.name for layer in model.layers]
    copy.set_weights(model.get_weights())
    x = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(copy(x, training=False), model(x, training=False), rtol=1e-4, atol=1e-5)
    if name == "efficientnet_b0":  # random in training: its drop paths became per-sample Dropout
        drops = [layer for layer in copy.layers if layer.name.endswith("drop")]
        assert drops and all(type(layer) is keras.layers.Dropout and layer.noise_shape[1:] == (1, 1, 1)
                             for layer in drops)
    else:  # training mode too: Keras' BN batch statistics equal the fused kernel's
        np.testing.assert_allclose(copy(x, training=True), model(x, training=True), rtol=1e-3, atol=1e-4)


def test_baseline(tool, tmp_path):
    from conftest import write_fashion_mnist

    write_fashion_mnist(tmp_path / "fashion", num_train=40, num_test=20)
    runs = [_fake_run(tmp_path / "recipe", [0.9, 0.94])]
    out, table = tmp_path / "r.json", tmp_path / "r.md"
    args = ["--run", runs[0], "--baseline", "--baseline-epochs", "2", "--data-dir", str(tmp_path / "fashion"),
            "--set", "model_args.planes=(4,4,4,4)", "--set", "model_args.stem_width=4",
            "--json", str(out), "--markdown", str(table)]
    assert tool.main(args) == 0
    baseline = json.loads(out.read_text())["baseline"]
    assert baseline["epochs"] == 2 and len(baseline["val_accuracy"]) == 2
    assert all(0.0 <= a <= 1.0 for a in baseline["val_accuracy"])
    assert baseline["best_test_accuracy"] == max(baseline["val_accuracy"])
    # Cumulative training time, validation excluded: the sum of the epochs' step times.
    assert baseline["train_seconds"] == pytest.approx(sum(baseline["epoch_seconds"]))
    assert all(s > 0 for s in baseline["epoch_seconds"])
    assert list(baseline["config"]["model_args"]["planes"]) == [4, 4, 4, 4]
    assert "zero_gamma" not in baseline["config"]["model_args"]
    assert "| plain Keras baseline: same network" in table.read_text()
