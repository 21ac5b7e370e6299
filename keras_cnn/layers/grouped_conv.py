"""Grouped convolution without Keras' XLA detour (ResNeXt's cardinality, AlexNet's two GPUs)."""

import keras


@keras.saving.register_keras_serializable(package="keras_cnn")
class GroupedConv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` for `groups > 1`, computed by TensorFlow's own grouped kernel.

    Same arguments, weights and results as Keras' layer (a subclass, so isinstance checks and
    weight loading are unchanged). Keras 3 on TensorFlow wraps every grouped convolution in a
    separate `tf.function(jit_compile=True)`, because TensorFlow's Eigen CPU kernel has no
    grouped convolution. TensorFlow's default CPU kernels (oneDNN), cuDNN and XLA all compute
    it, and Keras' detour through XLA:CPU is slow. On the 2-core CPU of issue 16, one ResNeXt
    3x3 convolution (256 channels, 32 groups, 16x16, batch 6) takes 1.17 s per forward and
    backward pass that way, against 3 ms here.

    The direct kernel is used on TensorFlow, channels-last, where a one-time probe finds it
    computes grouped convolutions (`keras_cnn.layers.tf_kernels.grouped_conv_supported`).
    Anywhere else this is Keras' layer.

    Args:
        **kwargs: `keras.layers.Conv2D` arguments.
    """

    def convolution_op(self, inputs, kernel):
        if self.groups > 1 and self.data_format == "channels_last" and keras.backend.backend() == "tensorflow":
            from keras_cnn.layers import tf_kernels

            if tf_kernels.grouped_conv_supported():
                return tf_kernels.grouped_conv2d(inputs, kernel, self.strides, self.padding, self.dilation_rate)
        return super().convolution_op(inputs, kernel)
