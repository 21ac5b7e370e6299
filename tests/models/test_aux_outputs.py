"""`AuxiliaryOutputsModel`: auxiliary classifier outputs in training only."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from keras_cnn.models.base import AuxiliaryOutputsModel


def _toy(aux_loss_weights=(0.3,)):
    inputs = layers.Input((8, 8, 3))
    hidden = layers.Conv2D(4, 3, name="conv")(inputs)
    aux = layers.Dense(5, activation="softmax", name="aux_predictions")(layers.Flatten()(hidden))
    main = layers.Dense(5, activation="softmax", name="predictions")(
        layers.GlobalAveragePooling2D()(hidden))
    return AuxiliaryOutputsModel(inputs, [main, aux], name="toy", aux_loss_weights=aux_loss_weights)


def test_training_returns_aux_outputs_inference_only_main(rng, tmp_path):
    model = _toy()
    x = rng.uniform(size=(4, 8, 8, 3)).astype("float32")
    main, aux = model(x, training=True)
    assert main.shape == aux.shape == (4, 5)
    np.testing.assert_allclose(model(x), main, rtol=1e-6)
    assert model.predict(x, verbose=0).shape == (4, 5)
    nested = keras.Model(inputs := layers.Input((8, 8, 3)), model(inputs))
    assert nested.output.shape == (None, 5)
    path = tmp_path / "toy.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded, AuxiliaryOutputsModel) and loaded.aux_loss_weights == (0.3,)
    np.testing.assert_array_equal(loaded(x), model(x))
    exported = tmp_path / "export"
    model.export(exported, verbose=False)
    assert tf.saved_model.load(str(exported)).serve(x).shape == (4, 5)


def test_fit_loss_is_main_plus_weighted_aux_and_metrics_see_main(rng):
    model = _toy(aux_loss_weights=(0.5,))
    x = rng.uniform(size=(8, 8, 8, 3)).astype("float32")
    y = np.arange(8) % 5
    model.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    main, aux = model(x, training=True)
    ce = keras.losses.SparseCategoricalCrossentropy()
    expected = float(ce(y, main) + 0.5 * ce(y, aux))
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-5)
    main_accuracy = float(np.mean(np.argmax(main, -1) == y))
    assert history.history["accuracy"][0] == pytest.approx(main_accuracy)
    assert model.evaluate(x, y, verbose=0)[0] == pytest.approx(float(ce(y, main)), rel=1e-5)


@pytest.mark.parametrize("weights", [(), (0.3, 0.3), (-1.0,), ("x",)])
def test_aux_loss_weights_must_fit_the_outputs(weights):
    with pytest.raises(ValueError, match="aux_loss_weights"):
        _toy(weights)
