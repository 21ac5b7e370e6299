"""Per-sample stochastic depth (Huang et al., 2016, "Deep Networks with Stochastic Depth")."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_cnn")
class DropPath(keras.layers.Layer):
    """Drops the whole residual branch for a random subset of the batch.

    Unlike `Dropout`, one Bernoulli draw is made per sample (not per unit), and
    survivors are scaled by `1 / (1 - rate)` so that the expected output is
    unchanged and inference needs no rescaling.

    Args:
        rate: Probability of dropping the branch for a sample, in `[0, 1)`.
        seed: Optional integer seed for the random draws.
        **kwargs: Standard `keras.layers.Layer` arguments.
    """

    def __init__(self, rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"`rate` must be in [0, 1), received rate={rate!r}")
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        keep = 1.0 - self.rate
        shape = (ops.shape(inputs)[0],) + (1,) * (len(inputs.shape) - 1)
        noise = keras.random.uniform(shape, seed=self.seed_generator, dtype=inputs.dtype)
        mask = ops.floor(keep + noise)
        return inputs * mask / ops.cast(keep, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config
