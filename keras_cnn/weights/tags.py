"""Named pretrained weights from timm and torchvision: `weights="torchvision:resnet50.IMAGENET1K_V2"`.

A tag names a published checkpoint; each family declares its tags in its `WeightsSpec`
(`keras_cnn.weights.families.<family>`), this module gathers them and does the generic work.
Loading one downloads the file once (into `$KERAS_CNN_HOME/weights/`, default
`~/.keras/keras_cnn/weights/`), verifies its SHA-256, and
converts it with `keras_cnn.weights.convert` (outputs equal to the reference library's; see
`tests/weights/test_weights_convert.py`). Offline, the error names the URL and the path to place the
file at. Each tag carries what evaluating it needs: input size, crop fraction, interpolation,
mean/std (the model normalises inside, so these are for the resize/crop only) and the reference
top-1 the library publishes.

Hashes: torchvision files carry the first 8 hex digits of their SHA-256 in the file name (as
`torch.hub` checks them); Hugging Face (timm) files are checked against the SHA-256 the hub
announces for the file (its LFS object id, the `X-Linked-Etag` header) unless the table pins one.
`.pth` files need torch (`torch.load(weights_only=True)`); `.safetensors` files never do.
"""

import hashlib
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request

from keras_cnn.weights.families import FAMILY_WEIGHTS, family_weights
from keras_cnn.weights.spec import WeightsTag

__all__ = ["TAGS", "WeightsTag", "cache_path", "fetch", "get_tag", "load_tagged", "tags_for"]

# Every family's `WeightsSpec.tags` (keras_cnn.weights.families), by tag.
TAGS = {}
for _spec in FAMILY_WEIGHTS.values():
    for _row in _spec.tags:
        if _row.tag in TAGS:
            raise ValueError(f"Weights tag {_row.tag!r} is declared twice")
        TAGS[_row.tag] = _row


def tags_for(name):
    """The tags that load into registry model `name`, in table order."""
    return tuple(tag for tag, row in TAGS.items() if row.model == name)


def get_tag(tag):
    """The `WeightsTag` of `tag`; `ValueError` naming the known tags otherwise."""
    if tag not in TAGS:
        raise ValueError(f"Unknown weights tag {tag!r}; known tags: {sorted(TAGS)}")
    return TAGS[tag]


def cache_path(tag, cache_dir=None):
    """Where `tag`'s checkpoint is (or will be) cached."""
    row = get_tag(tag)
    root = cache_dir or os.path.join(
        os.environ.get("KERAS_CNN_HOME", os.path.join(os.path.expanduser("~"), ".keras", "keras_cnn")), "weights")
    return os.path.join(root, row.library, row.filename)


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_hash(path, expected, row):
    actual = _sha256(path)
    if not actual.startswith(expected.lower()):
        raise ValueError(f"{path} is not the checkpoint of {row.tag!r}: its SHA-256 is {actual}, expected "
                         f"{expected}{'...' if len(expected) < 64 else ''}. Delete it to download it again.")


def _announced_sha256(response):
    # The hub serves LFS files through a redirect; the file's SHA-256 is its ETag there.
    for header in ("X-Linked-Etag", "ETag"):
        value = (response.headers.get(header) or "").strip('"').removeprefix("W/").strip('"')
        if re.fullmatch(r"[0-9a-f]{64}", value):
            return value
    return None


def _download(row, path, timeout):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    request = urllib.request.Request(row.url, headers={"User-Agent": "keras_cnn"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            expected = row.sha256 or _announced_sha256(response)
            if expected is None:
                raise ValueError(f"{row.url} announces no SHA-256 and {row.tag!r} pins none: refusing to use "
                                 f"an unverifiable file")
            with tempfile.NamedTemporaryFile(dir=os.path.dirname(path), delete=False) as tmp:
                shutil.copyfileobj(response, tmp, 1 << 20)
    except (urllib.error.URLError, OSError) as error:
        from keras_cnn.weights.keras_applications import WeightsUnavailableError

        raise WeightsUnavailableError(
            f"Could not download the weights {row.tag!r} from {row.url} ({error}). Offline, download the "
            f"file elsewhere and place it at {path}" + (f" (its SHA-256 starts with {row.sha256})"
                                                       if row.sha256 else "")
        ) from None
    try:
        _check_hash(tmp.name, expected, row)
    except ValueError:
        os.remove(tmp.name)
        raise
    os.replace(tmp.name, path)  # atomic: a killed download never leaves a half file at `path`


def fetch(tag, *, cache_dir=None, timeout=60):
    """The local path of `tag`'s checkpoint: cached, or downloaded and verified first.

    Args:
        tag: A key of `TAGS`.
        cache_dir: Cache root (default `$KERAS_CNN_HOME/weights`).
        timeout: Seconds to wait for the server.

    Returns:
        The path of the verified file.

    Raises:
        WeightsUnavailableError: Offline (the message names the URL and where to put the file).
        ValueError: The file's hash does not match.
    """
    row = get_tag(tag)
    path = cache_path(tag, cache_dir)
    if os.path.isfile(path):
        if row.sha256:  # a file placed by hand (offline) is checked like a download
            _check_hash(path, row.sha256, row)
        return path
    _download(row, path, timeout)
    return path


def _copy_layers(source, target):
    """Copies every weighted layer of `target` from the same-named layer of `source`."""
    for layer in target.layers:
        if not layer.weights:
            continue
        values = source.get_layer(layer.name).get_weights()
        layer.set_weights(values)
    return target


def load_tagged(name, tag, kwargs, *, cache_dir=None):
    """Registry model `name` with the converted checkpoint `tag`.

    Args:
        name: Registry name (one of `TAGS[tag].model`).
        tag: The weights tag.
        kwargs: The user's other builder arguments (already checked by `load_pretrained`).
        cache_dir: Cache root (default `$KERAS_CNN_HOME/weights`).

    Returns:
        The model with the converted weights.
    """
    from keras_cnn.registry import get_model_info
    from keras_cnn.weights.convert import convert_checkpoint

    row = get_tag(tag)
    if row.model != name:
        raise ValueError(f"weights={tag!r} are for {row.model!r}, received it for {name!r}")
    path = fetch(tag, cache_dir=cache_dir)
    kwargs = dict(kwargs)
    include_top = kwargs.pop("include_top", True)
    full_kwargs = {k: v for k, v in kwargs.items() if k != "pooling"}
    full = convert_checkpoint(name, path, source=row.library, include_top=True, **full_kwargs)
    if include_top:
        return full
    info = get_model_info(name)
    spec = family_weights(info.family).source_spec(name, row.library)
    target = info.builder(include_top=False, input_normalization=spec.input_normalization,
                          **{**spec.builder_args, **kwargs})
    return _copy_layers(full, target)
