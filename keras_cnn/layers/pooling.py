"""PyTorch-style pooling that Keras lacks: averaging to a fixed grid whatever the input size
(the auxiliary heads of GoogLeNet and Inception-v3) and ceil-mode max pooling (Caffe's and
torchvision's GoogLeNet and SqueezeNet pools)."""


import keras
from keras import ops

from keras_cnn.validation import check_choice, check_positive_int

GRID_WINDOWS = ("adaptive", "overlapping")


@keras.saving.register_keras_serializable(package="keras_cnn")
class GridAveragePooling2D(keras.layers.Layer):
    """Average pooling to a fixed `grid_size x grid_size` output, whatever the input size.

    Along an axis of length `n` with `g = grid_size`:

    - `windows="adaptive"` is PyTorch's `adaptive_avg_pool2d`: output cell `i` averages
      `[floor(i * n / g), ceil((i + 1) * n / g))` (torchvision's GoogLeNet aux heads).
    - `windows="overlapping"` uses stride `n // g` and window `n - (g - 1) * (n // g)`: the
      paper's 5x5/3 average pool at GoogLeNet's 14x14 maps, torchvision's InceptionAux 5x5/3
      at Inception-v3's 17x17, and a `g x g` grid at every other size `n >= g` (a `g x g` map
      passes through unchanged). Maps smaller than the grid use the adaptive bins.

    Unlike `keras.layers.AdaptiveAveragePooling2D`, the windows are computed from the runtime
    shape, so models with free spatial sizes work. Inputs are channels last.

    Args:
        grid_size: Output height and width.
        windows: `"adaptive"` or `"overlapping"`.
        **kwargs: Standard `keras.layers.Layer` arguments.
    """

    def __init__(self, grid_size, windows="adaptive", **kwargs):
        super().__init__(**kwargs)
        check_positive_int("grid_size", grid_size)
        check_choice("windows", windows, GRID_WINDOWS)
        self.grid_size, self.windows = int(grid_size), windows

    def _averaging_matrix(self, length, dtype):
        """A `(grid_size, length)` matrix whose row `i` averages the window of output cell `i`;
        built with ops so that `length` may be dynamic."""
        grid = self.grid_size
        cells = ops.arange(grid, dtype="int32")
        length = ops.cast(length, "int32")
        start = (cells * length) // grid
        end = ((cells + 1) * length + grid - 1) // grid
        if self.windows == "overlapping":
            stride = length // grid
            large = length >= grid
            start = ops.where(large, cells * stride, start)
            end = ops.where(large, cells * stride + length - (grid - 1) * stride, end)
        positions = ops.arange(length, dtype="int32")
        inside = ops.logical_and(positions[None, :] >= start[:, None], positions[None, :] < end[:, None])
        return ops.cast(inside, dtype) / ops.cast(end - start, dtype)[:, None]

    def call(self, inputs):
        shape = ops.shape(inputs)
        rows = self._averaging_matrix(shape[1], inputs.dtype)
        cols = self._averaging_matrix(shape[2], inputs.dtype)
        x = ops.einsum("ih,bhwc->biwc", rows, inputs)
        return ops.einsum("jw,biwc->bijc", cols, x)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.grid_size, self.grid_size, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "grid_size": self.grid_size, "windows": self.windows}


@keras.saving.register_keras_serializable(package="keras_cnn")
class CeilModeMaxPooling2D(keras.layers.Layer):
    """Max pooling in PyTorch's `ceil_mode=True`: `ceil((n - pool_size) / strides) + 1` outputs.

    Keras pools only in floor mode. Padding `strides - 1` rows and columns of -inf at the
    bottom/right gives the ceil-mode size, and a partial last window takes the max of its
    in-bounds values only, whatever their sign (zero padding would win over negative inputs).
    With `strides <= pool_size` every window starts inside the input, as PyTorch requires.
    Inputs are channels last.

    Args:
        pool_size: Square window size.
        strides: Stride, at most `pool_size`; `None` means `pool_size`.
        **kwargs: Standard `keras.layers.Layer` arguments.
    """

    def __init__(self, pool_size, strides=None, **kwargs):
        super().__init__(**kwargs)
        strides = pool_size if strides is None else strides
        check_positive_int("pool_size", pool_size)
        check_positive_int("strides", strides)
        if strides > pool_size:
            raise ValueError(f"`strides` must be <= pool_size={pool_size}, received strides={strides!r}")
        self.pool_size, self.strides = int(pool_size), int(strides)

    def call(self, inputs):
        extra = self.strides - 1
        if extra:
            inputs = ops.pad(inputs, [(0, 0), (0, extra), (0, extra), (0, 0)],
                             constant_values=float("-inf"))
        return ops.max_pool(inputs, self.pool_size, self.strides, padding="valid")

    def compute_output_shape(self, input_shape):
        def size(n):
            return None if n is None else -(-(n - self.pool_size) // self.strides) + 1

        return (input_shape[0], size(input_shape[1]), size(input_shape[2]), input_shape[3])

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides}
