"""TensorFlow-only fast paths of `keras_cnn.layers` (imported by the layers on that backend only).

- `fused_batch_norm_training`: `BatchNormalization`'s training step as one fused kernel.
- `grouped_conv2d`: `GroupedConv2D`'s convolution as TensorFlow's own grouped kernel.
"""

import functools

import numpy as np
import tensorflow as tf

DATA_FORMATS = {4: "NHWC", 5: "NDHWC"}


def fused_batch_norm_training(layer, inputs):
    """A training step of `layer` on `inputs`, as Keras' `BatchNormalization.call` computes it.

    Normalises with the batch statistics, updates the moving averages with `layer.momentum`,
    and returns the result in the input's dtype. The statistics and the affine parameters stay
    float32 (the kernel's `U` type) for bfloat16/float16 inputs, as Keras' layer keeps them.

    Args:
        layer: A built `keras_cnn.layers.BatchNormalization`.
        inputs: A channels-last 4-D or 5-D float tensor.

    Returns:
        The normalised tensor, same shape and dtype as `inputs`.
    """
    channels = inputs.shape[-1]
    scale = tf.convert_to_tensor(layer.gamma) if layer.scale else tf.ones((channels,), "float32")
    offset = tf.convert_to_tensor(layer.beta) if layer.center else tf.zeros((channels,), "float32")
    outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
        inputs,
        scale,
        offset,
        epsilon=layer.epsilon,
        data_format=DATA_FORMATS[len(inputs.shape)],
        is_training=True,
    )
    # The kernel returns the unbiased (Bessel-corrected) batch variance for the moving
    # average; Keras' layer averages the biased one, which is also what normalised the batch.
    count = tf.cast(tf.size(inputs, out_type=tf.int64) // channels, tf.float32)
    variance = variance * (tf.maximum(count - 1.0, 1.0) / count)
    momentum = layer.momentum
    layer.moving_mean.assign(layer.moving_mean * momentum + mean * (1.0 - momentum))
    layer.moving_variance.assign(layer.moving_variance * momentum + variance * (1.0 - momentum))
    return outputs


@functools.cache
def grouped_conv_supported():
    """Whether TensorFlow's own kernel computes grouped convolutions on the default device.

    oneDNN (TensorFlow's default CPU kernels on x86), cuDNN and XLA do; TensorFlow's Eigen CPU
    kernel (`TF_ENABLE_ONEDNN_OPTS=0`, or a CPU without oneDNN) does not. Probed once, eagerly,
    on a tiny input against the same convolution computed group by group.

    Returns:
        bool.
    """
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 5, 5, 4)).astype("float32")
    kernel = rng.normal(size=(3, 3, 2, 6)).astype("float32")
    with tf.init_scope():
        try:
            grouped = tf.nn.convolution(x, kernel, padding="SAME").numpy()
        except (tf.errors.OpError, ValueError):
            return False
        reference = np.concatenate([
            tf.nn.convolution(x[..., 2 * g:2 * g + 2], kernel[..., 3 * g:3 * g + 3], padding="SAME").numpy()
            for g in range(2)
        ], axis=-1)
    return bool(np.allclose(grouped, reference, rtol=1e-4, atol=1e-4))


def grouped_conv2d(inputs, kernel, strides, padding, dilation_rate):
    """A channels-last grouped 2-D convolution with TensorFlow's kernel (groups from the shapes).

    Args:
        inputs: `(batch, height, width, channels)` tensor.
        kernel: `(kh, kw, channels // groups, filters)` tensor.
        strides: Two ints.
        padding: `"valid"` or `"same"`.
        dilation_rate: Two ints.

    Returns:
        The convolution's output, `(batch, out_height, out_width, filters)`.
    """
    return tf.nn.convolution(
        inputs, kernel, strides=list(strides), padding=padding.upper(), dilations=list(dilation_rate),
        data_format="NHWC",
    )


@tf.function(jit_compile=True)
def _silu_gradient(x, dy):
    s = tf.sigmoid(x)
    return dy * s * (1.0 + x * (1.0 - s))


@tf.custom_gradient
def silu_with_fused_gradient(x):
    """`x * sigmoid(x)` whose gradient is one XLA-compiled element-wise pass.

    Args:
        x: A float tensor.

    Returns:
        `(x * sigmoid(x), gradient function)`, as `tf.custom_gradient` wants.
    """

    def gradient(dy):
        return _silu_gradient(x, dy)

    return x * tf.sigmoid(x), gradient
