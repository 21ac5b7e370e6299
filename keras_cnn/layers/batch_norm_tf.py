"""TensorFlow-only: the fused training step of `keras_cnn.layers.BatchNormalization`."""

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
