"""Named timm/torchvision weights: the table, download + hash check + cache, offline errors, loading.

No network here: downloads go through a fake `urlopen` that serves a committed fixture
checkpoint (tests/fixtures/weights), so the whole chain (hash, atomic cache write, conversion,
outputs equal to the reference library's) runs offline.
"""

import email.message
import hashlib
import io
import json
import os
import re
import urllib.error

import numpy as np
import pytest

import keras_cnn
from keras_cnn.weights import tags as tags_lib
from keras_cnn.weights.convert import family_converter
from keras_cnn.weights.keras_applications import WeightsUnavailableError

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "weights")
MANIFEST = json.load(open(os.path.join(FIXTURES, "manifest.json")))["fixtures"]


def test_every_tag_names_a_registered_model_with_a_converter_layout():
    for tag, row in tags_lib.TAGS.items():
        assert tag.startswith(f"{row.library}:") and tag == row.tag
        info = keras_cnn.get_model_info(row.model)
        spec = family_converter(info.family).source_spec(row.model, row.library)
        assert spec.library == row.library
        assert 50 < row.top1 < 95 and 0.5 < row.crop_fraction <= 1 and row.input_size >= 32
        assert row.interpolation in ("bilinear", "bicubic")
        if row.library == "torchvision":
            # torch.hub's convention: the file name carries the SHA-256's first 8 hex digits.
            assert re.fullmatch(r"[0-9a-f]{8}", row.sha256) and row.filename.endswith(f"-{row.sha256}.pth")


def test_registry_and_cli_list_the_tags():
    assert set(tags_lib.tags_for("resnet50")) == {"torchvision:resnet50.IMAGENET1K_V1",
                                                  "torchvision:resnet50.IMAGENET1K_V2", "timm:resnet50.a1_in1k"}
    assert tags_lib.get_tag("timm:resnet50.a1_in1k").url == (
        "https://huggingface.co/timm/resnet50.a1_in1k/resolve/main/model.safetensors")
    assert set(tags_lib.tags_for("resnet50")) <= set(keras_cnn.get_model_info("resnet50").pretrained)
    assert "resnext50_32x4d" in keras_cnn.list_models(pretrained=True)


def test_unknown_tag_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"Unknown weights tag 'timm:nope'; known tags: \['timm:"):
        tags_lib.get_tag("timm:nope")


def test_offline_error_names_the_url_and_where_to_place_the_file(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(tags_lib.urllib.request, "urlopen", offline)
    tag = "torchvision:resnet50.IMAGENET1K_V2"
    expected = os.path.join(str(tmp_path), "torchvision", "resnet50-11ad3fa6.pth")
    with pytest.raises(WeightsUnavailableError) as error:
        tags_lib.fetch(tag, cache_dir=str(tmp_path))
    message = str(error.value)
    assert "https://download.pytorch.org/models/resnet50-11ad3fa6.pth" in message
    assert expected in message and "starts with 11ad3fa6" in message
    assert not os.listdir(tmp_path / "torchvision")  # nothing half-written


def test_the_builder_reports_the_offline_error_too(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_CNN_HOME", str(tmp_path))
    monkeypatch.setattr(tags_lib.urllib.request, "urlopen",
                        lambda *a, **k: (_ for _ in ()).throw(urllib.error.URLError("offline")))
    with pytest.raises(WeightsUnavailableError, match="place it at .*resnet18-f37072fd.pth"):
        keras_cnn.ResNet18(weights="torchvision:resnet18.IMAGENET1K_V1")
    with pytest.raises(ValueError, match="fixes the architecture"):
        keras_cnn.ResNet18(weights="torchvision:resnet18.IMAGENET1K_V1", depths=(1, 1, 1, 1))


# --- a fixture checkpoint served as if from the hub ---------------------------------------------------------


class FakeResponse(io.BytesIO):
    def __init__(self, payload, headers):
        super().__init__(payload)
        self.headers = email.message.Message()
        for key, value in headers.items():
            self.headers[key] = value

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _fixture_tag(monkeypatch, fixture, *, sha256=None):
    """Registers a tag whose 'download' is the committed fixture `fixture`."""
    entry = MANIFEST[fixture]
    row = tags_lib.WeightsTag(tag=f"{entry['source']}:{fixture}.test", model=entry["name"], library=entry["source"],
                              url=f"https://example.invalid/{fixture}.safetensors", sha256=sha256, input_size=64,
                              crop_fraction=0.875, interpolation="bicubic", top1=70.0)
    monkeypatch.setitem(tags_lib.TAGS, row.tag, row)
    return row, entry


def _serve(monkeypatch, fixture, headers):
    payload = open(os.path.join(FIXTURES, fixture + ".safetensors"), "rb").read()
    calls = []

    def urlopen(request, timeout=None):
        calls.append(request.full_url)
        return FakeResponse(payload, headers)

    monkeypatch.setattr(tags_lib.urllib.request, "urlopen", urlopen)
    return hashlib.sha256(payload).hexdigest(), calls


def test_download_is_verified_against_the_hub_hash_cached_and_converted(tmp_path, monkeypatch):
    fixture = "timm_resnet50d"
    digest, calls = _serve(monkeypatch, fixture, {})
    _serve(monkeypatch, fixture, {"X-Linked-Etag": f'"{digest}"'})
    row, entry = _fixture_tag(monkeypatch, fixture)
    model = tags_lib.load_tagged(entry["name"], row.tag, {"input_shape": tuple(entry["input_shape"]),
                                                          "classifier_activation": None, **entry["overrides"]},
                                 cache_dir=str(tmp_path))
    data = np.load(os.path.join(FIXTURES, fixture + ".npz"))
    logits = np.asarray(model(data["images"].astype("float32"), training=False))
    assert np.abs(logits - data["logits"]).max() < 1e-4  # identical outputs to timm's
    cached = tags_lib.cache_path(row.tag, str(tmp_path))
    assert os.path.isfile(cached) and hashlib.sha256(open(cached, "rb").read()).hexdigest() == digest

    # Second use: from the cache, no download.
    monkeypatch.setattr(tags_lib.urllib.request, "urlopen", lambda *a, **k: pytest.fail("downloaded again"))
    assert tags_lib.fetch(row.tag, cache_dir=str(tmp_path)) == cached


def test_headless_model_takes_the_backbone_weights(tmp_path, monkeypatch):
    fixture = "tv_resnet18"
    digest, _ = _serve(monkeypatch, fixture, {})
    row, entry = _fixture_tag(monkeypatch, fixture, sha256=digest)
    kwargs = {"input_shape": tuple(entry["input_shape"]), **entry["overrides"]}
    full = tags_lib.load_tagged(entry["name"], row.tag, {**kwargs, "classifier_activation": None},
                                cache_dir=str(tmp_path))
    headless = tags_lib.load_tagged(entry["name"], row.tag, {**kwargs, "include_top": False, "pooling": "avg"},
                                    cache_dir=str(tmp_path))
    x = np.random.default_rng(0).uniform(0, 255, (2, *entry["input_shape"])).astype("float32")
    features = keras_cnn.feature_extractor(full, (32,))(x)["P5"]
    np.testing.assert_allclose(headless(x), np.asarray(features).mean(axis=(1, 2)), atol=1e-5)


@pytest.mark.parametrize("announced", [None, "0" * 64])
def test_unverifiable_or_wrong_downloads_are_refused_and_not_cached(tmp_path, monkeypatch, announced):
    fixture = "timm_resnet50"
    _serve(monkeypatch, fixture, {"X-Linked-Etag": f'"{announced}"'} if announced else {})
    row, _ = _fixture_tag(monkeypatch, fixture)
    match = "announces no SHA-256" if announced is None else "is not the checkpoint of"
    with pytest.raises(ValueError, match=match):
        tags_lib.fetch(row.tag, cache_dir=str(tmp_path))
    assert not os.path.exists(tags_lib.cache_path(row.tag, str(tmp_path)))
    assert not (tmp_path / "timm").exists() or not os.listdir(tmp_path / "timm")  # no partial file left


def test_a_hand_placed_file_with_the_wrong_hash_is_refused(tmp_path, monkeypatch):
    fixture = "tv_resnet18"
    row, _ = _fixture_tag(monkeypatch, fixture, sha256="0123abcd")
    path = tags_lib.cache_path(row.tag, str(tmp_path))
    os.makedirs(os.path.dirname(path))
    with open(path, "wb") as f:
        f.write(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"SHA-256 is [0-9a-f]{64}, expected 0123abcd\.\.\..*Delete it"):
        tags_lib.fetch(row.tag, cache_dir=str(tmp_path))
