"""Reading checkpoints without executing them: safetensors in pure numpy, `.pth` via torch.

A safetensors file is an 8-byte little-endian header length, a JSON header mapping each
tensor name to `{"dtype", "shape", "data_offsets": [begin, end]}` (offsets relative to the
byte buffer that follows the header) and the byte buffer. Nothing in it is code, so it can
be read with numpy alone; every offset, length and dtype is checked against the file before
any tensor is returned, so a truncated or corrupt download fails here, naming the first bad
tensor, instead of producing a silently wrong model.

A `.pth` file is a pickle, and unpickling runs code. It is read only through
`torch.load(weights_only=True)` (torch's restricted unpickler) when torch is installed;
without torch it is refused: this module never unpickles anything itself.
"""

import json
import math
import os

import numpy as np

HEADER_LENGTH_BYTES = 8
# The reference implementation refuses headers over 100 MB; a larger length is corruption.
MAX_HEADER_BYTES = 100 * 1024 * 1024
METADATA_KEY = "__metadata__"

# safetensors dtype -> little-endian numpy dtype of the stored bytes.
STORED_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # numpy has no bfloat16: read the raw 16 bits, widen below
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
# Half-precision floats are widened: Keras variables here are float32.
WIDENED_TO_FLOAT32 = ("F16", "BF16")
SAFETENSORS_SUFFIX = ".safetensors"
PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")


def _bad(path, message):
    return ValueError(f"Corrupt safetensors file {str(path)!r}: {message}")


def read_safetensors_header(path):
    """Parses and validates the header of a safetensors file.

    Args:
        path: The `.safetensors` file.

    Returns:
        `(entries, data_start, metadata)`: `entries` is a list of `(name, dtype, shape,
        begin, end)` in file (offset) order, `data_start` the byte offset of the buffer,
        `metadata` the optional `__metadata__` dict.

    Raises:
        ValueError: naming the file and the first bad tensor when the header is unreadable,
            an entry is malformed, a tensor's bytes do not match its dtype and shape, the
            tensors overlap or leave gaps, or the file is shorter or longer than the header
            says.
    """
    path = os.fspath(path)
    file_size = os.path.getsize(path)
    if file_size < HEADER_LENGTH_BYTES:
        raise _bad(path, f"{file_size} bytes is shorter than the {HEADER_LENGTH_BYTES}-byte header length")
    with open(path, "rb") as handle:
        header_length = int.from_bytes(handle.read(HEADER_LENGTH_BYTES), "little")
        if header_length > MAX_HEADER_BYTES or HEADER_LENGTH_BYTES + header_length > file_size:
            raise _bad(path, f"header length {header_length} does not fit in the file of {file_size} bytes")
        raw = handle.read(header_length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _bad(path, f"the header is not valid JSON ({err})") from err
    if not isinstance(header, dict):
        raise _bad(path, f"the header is a JSON {type(header).__name__}, not an object")
    metadata = header.pop(METADATA_KEY, None)
    if metadata is not None and not isinstance(metadata, dict):
        raise _bad(path, f"{METADATA_KEY!r} must be an object, received {metadata!r}")

    entries = []
    for name, info in header.items():
        try:
            dtype = info["dtype"]
            shape = tuple(info["shape"])
            begin, end = info["data_offsets"]
        except (TypeError, KeyError, ValueError) as err:
            raise _bad(path, f"tensor {name!r} has a malformed entry {info!r}") from err
        if dtype not in STORED_DTYPES:
            raise _bad(path, f"tensor {name!r} has unsupported dtype {dtype!r} (supported: {sorted(STORED_DTYPES)})")
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise _bad(path, f"tensor {name!r} has invalid shape {list(shape)!r}")
        if not all(isinstance(o, int) and not isinstance(o, bool) for o in (begin, end)) or not 0 <= begin <= end:
            raise _bad(path, f"tensor {name!r} has invalid data_offsets {[begin, end]!r}")
        expected = math.prod(shape) * STORED_DTYPES[dtype].itemsize
        if end - begin != expected:
            raise _bad(
                path,
                f"tensor {name!r} spans {end - begin} bytes, but dtype {dtype} and shape "
                f"{list(shape)} need {expected}",
            )
        entries.append((name, dtype, shape, begin, end))

    # The buffer must be exactly the concatenation of the tensors (the format's own rule):
    # a hole or an overlap means the header and the data disagree.
    entries.sort(key=lambda entry: (entry[3], entry[4]))
    data_start = HEADER_LENGTH_BYTES + header_length
    buffer_size = file_size - data_start
    position = 0
    for name, _, _, begin, end in entries:
        if begin != position:
            what = "overlaps the previous tensor" if begin < position else f"leaves a gap at byte {position}"
            raise _bad(path, f"tensor {name!r} at data_offsets [{begin}, {end}] {what}")
        if end > buffer_size:
            raise _bad(
                path,
                f"tensor {name!r} ends at byte {end} of the data but the file holds only "
                f"{buffer_size} data bytes (truncated?)",
            )
        position = end
    if position != buffer_size:
        raise _bad(path, f"{buffer_size - position} trailing bytes after the last tensor")
    return entries, data_start, metadata


def load_safetensors(path):
    """Reads every tensor of a safetensors file into numpy, without torch.

    The file is memory-mapped; F32 and integer tensors are read-only views of the map,
    F16 and BF16 tensors are widened to new float32 arrays.

    Args:
        path: The `.safetensors` file.

    Returns:
        `{name: np.ndarray}` in file order.

    Raises:
        ValueError: for a corrupt or truncated file (see `read_safetensors_header`).
    """
    entries, data_start, _ = read_safetensors_header(path)
    if not entries:
        return {}
    mapped = np.memmap(os.fspath(path), dtype=np.uint8, mode="r")
    tensors = {}
    for name, dtype, shape, begin, end in entries:
        stored = STORED_DTYPES[dtype]
        array = np.frombuffer(mapped, dtype=stored, count=(end - begin) // stored.itemsize,
                              offset=data_start + begin).reshape(shape)
        if dtype == "BF16":
            # bfloat16 is the upper half of a float32.
            array = (array.astype(np.uint32) << 16).view(np.float32)
        elif dtype in WIDENED_TO_FLOAT32:
            array = array.astype(np.float32)
        tensors[name] = array
    return tensors


def load_torch_state_dict(path):
    """Reads a PyTorch `.pth` state dict with torch's restricted (`weights_only=True`) loader.

    Args:
        path: The `.pth`/`.pt`/`.bin` file.

    Returns:
        `{name: np.ndarray}` (float32 for floating tensors).

    Raises:
        ValueError: if torch is not installed (a pickle is never opened without its
            restricted loader), or the file is not a flat state dict of tensors.
    """
    try:
        import torch
    except ImportError as err:
        raise ValueError(
            f"Reading {str(path)!r} needs torch (its restricted weights_only loader): a .pth file "
            "is a pickle, which keras_cnn never opens otherwise. Install torch or convert the "
            "checkpoint to .safetensors"
        ) from err
    try:
        state = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise ValueError(f"torch refused {str(path)!r} with weights_only=True: {err}") from err
    for key in ("state_dict", "model", "state_dict_ema"):  # common training-checkpoint wrappers
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict):
        raise ValueError(f"{str(path)!r} holds a {type(state).__name__}, not a state dict")
    tensors = {}
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"Entry {name!r} of {str(path)!r} is a {type(value).__name__}, not a tensor")
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.float()
        tensors[name] = value.numpy()
    return tensors


def load_state_dict(path):
    """Reads a checkpoint file into `{name: np.ndarray}`, choosing the reader by suffix.

    Args:
        path: A `.safetensors` file (read with numpy) or a PyTorch pickle (`.pth`, `.pt`,
            `.bin`, `.ckpt`; needs torch).

    Returns:
        `{name: np.ndarray}`.

    Raises:
        ValueError: for an unknown suffix, a missing file, or a file the reader refuses.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"Checkpoint file not found, received path={path!r}")
    if path.endswith(SAFETENSORS_SUFFIX):
        return load_safetensors(path)
    if path.endswith(PICKLE_SUFFIXES):
        return load_torch_state_dict(path)
    raise ValueError(
        f"Unknown checkpoint format, received path={path!r}; expected {SAFETENSORS_SUFFIX} or one "
        f"of {PICKLE_SUFFIXES}"
    )
