"""Local response normalisation across channels (Krizhevsky et al., 2012, "ImageNet
Classification with Deep Convolutional Neural Networks"), used by the paper versions of
AlexNet and GoogLeNet."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_cnn")
class LocalResponseNormalization(keras.layers.Layer):
    """`x / (k + alpha / size * sum_{window} x^2) ** beta` over a window of channels.

    Follows `torch.nn.LocalResponseNorm` (alpha is divided by the window `size`; the window
    is centred, zero-padded at the channel ends), which is also Caffe's cross-channel LRN
    that the GoogLeNet and AlexNet papers trained with.

    Args:
        size: Number of neighbouring channels in the window (odd or even).
        alpha: Scale of the sum of squares.
        beta: Exponent.
        k: Additive constant.
        **kwargs: Standard `keras.layers.Layer` arguments.
    """

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=1.0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"`size` must be a positive integer, received size={size!r}")
        for argument, value in (("alpha", alpha), ("beta", beta), ("k", k)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(
                    f"`{argument}` must be a non-negative number, received {argument}={value!r}"
                )
        self.size, self.alpha, self.beta, self.k = size, float(alpha), float(beta), float(k)

    def call(self, inputs):
        squared = ops.square(inputs)
        # A sum over a channel window is an average pool over the channel axis (times size).
        before, after = self.size // 2, (self.size - 1) // 2
        padded = ops.pad(squared, [(0, 0)] * (len(inputs.shape) - 1) + [(before, after)])
        channels = inputs.shape[-1]
        window_sum = sum(padded[..., i : i + channels] for i in range(self.size))
        return inputs / ops.power(self.k + self.alpha / self.size * window_sum, self.beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"size": self.size, "alpha": self.alpha, "beta": self.beta, "k": self.k})
        return config
