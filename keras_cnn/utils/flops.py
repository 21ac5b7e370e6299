"""Parameter and multiply-accumulate (MAC) counts read off a model's graph."""

import math

import keras


def count_params(model):
    """Number of trainable parameters (what PyTorch's `parameters()` counts)."""
    return int(sum(math.prod(w.shape) for w in model.trainable_weights))


def _layer_macs(layer, input_shape, output_shape):
    """MACs of one call of `layer`: convolutions, depthwise/separable convs and dense."""
    out_positions = math.prod(output_shape[1:-1])
    if isinstance(layer, keras.layers.SeparableConv2D):
        return out_positions * (
            math.prod(layer.depthwise_kernel.shape) + math.prod(layer.pointwise_kernel.shape)
        )
    if isinstance(layer, (keras.layers.Conv2DTranspose, keras.layers.Conv1DTranspose,
                          keras.layers.Conv3DTranspose)):
        return math.prod(input_shape[1:-1]) * math.prod(layer.kernel.shape)
    kernel = getattr(layer, "kernel", None)
    if isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense)) or (
        kernel is not None and "Conv" in type(layer).__name__
    ):
        # Per output position: kernel = (k..., in/groups, out) or depthwise (k..., in, mult).
        return out_positions * math.prod(kernel.shape)
    return 0


def count_macs(model, per_layer=False):
    """Counts the multiply-accumulates of one forward pass for a single image.

    Counts convolutions (grouped, depthwise, separable, transposed) and dense layers,
    the convention of torchvision's published "GFLOPS" and most papers; batch norm,
    activations, pooling and elementwise ops are not counted. Nested models are walked.

    Args:
        model: A built functional `keras.Model` with static spatial input sizes.
        per_layer: Also return a `{layer_name: macs}` dict.

    Returns:
        Total MACs (int), or `(total, per_layer_dict)`.
    """
    table = {}

    def walk(m, prefix):
        for layer in m.layers:
            if isinstance(layer, keras.Model):
                walk(layer, f"{prefix}{layer.name}/")
                continue
            for node in layer._inbound_nodes:
                inputs, outputs = node.input_tensors, node.output_tensors
                if not inputs or not outputs:
                    continue
                in_shape, out_shape = tuple(inputs[0].shape), tuple(outputs[0].shape)
                if any(d is None for d in out_shape[1:]):
                    raise ValueError(
                        f"count_macs needs static input sizes; layer {layer.name!r} has output "
                        f"shape {out_shape}. Build the model with a full `input_shape`."
                    )
                macs = _layer_macs(layer, in_shape, out_shape)
                if macs:
                    key = f"{prefix}{layer.name}"
                    table[key] = table.get(key, 0) + int(macs)

    walk(model, "")
    total = sum(table.values())
    return (total, table) if per_layer else total
