"""keras_cnn.data.class_names: every dataset's names, in label order, offline."""

import pytest

from keras_cnn.data import DATASETS
from keras_cnn.data.class_names import class_names, imagenet_class_names, imagenet_synsets


def test_imagenet_names_are_the_1000_ilsvrc_classes_offline():
    names, synsets = imagenet_class_names(), imagenet_synsets()
    assert len(names) == len(synsets) == 1000
    assert list(synsets) == sorted(synsets)  # ILSVRC-2012 class ids are the sorted synsets
    assert (names[0], names[207], names[281], names[999]) == ("tench", "golden retriever", "tabby", "toilet tissue")


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_dataset_row_has_one_name_per_class(name):
    names = class_names(name)
    assert len(names) == DATASETS[name].num_classes
    if name != "imagenet":  # WordNet's first lemmas repeat there ("crane" the bird and the machine)
        assert len(set(names)) == len(names)


def test_imagenet_long_names_and_unknown_dataset():
    assert imagenet_class_names(short=False)[0] == "tench, Tinca tinca"
    with pytest.raises(ValueError, match="received dataset='mnist'"):
        class_names("mnist")
