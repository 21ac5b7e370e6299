"""`--set` mistakes a user makes: each a `ValueError` naming the key as typed and the valid choices."""

import pytest

from keras_cnn import cli
from keras_cnn.training.config import apply_overrides, check_model_args, load_recipe, resolve_config


@pytest.fixture(scope="module")
def recipe():
    return load_recipe("digits_quickstart")


@pytest.mark.parametrize(
    "override, match",
    [
        # Before: a TypeError deep in the runner ("can't multiply sequence by non-int of type 'float'").
        ("learning_rate=fast", r"^--set `learning_rate` must be a number, received learning_rate=fast$"),
        ("optim.learning_rate='0.1'", r"`optim.learning_rate` must be a number, received optim.learning_rate='0.1'"),
        # Before: "`name` must be one of [...]" (the optimizer builder's argument), at run time.
        ("optimizer=sgdd", r"^--set `optimizer` must be one of \['sgd', 'rmsprop', 'adam', 'adamw', 'lamb'\], "
                           r"received optimizer=sgdd; did you mean 'sgd'\?$"),
        ("optim.name=adm", r"`optim.name` must be one of .*received optim.name=adm; did you mean 'adam'"),
        ("schedule=cosin", r"`schedule` must be one of \['constant', 'cosine', .*did you mean 'cosine'"),
        ("weight_decay_mode=decouple", r"`weight_decay_mode` must be one of \['auto', 'l2', 'decoupled'\]"),
        ("nesterov=1", r"`nesterov` must be True or False, received nesterov=1"),
        ("epochs=2.5", r"`epochs` must be an integer, received epochs=2.5"),
        # Before: TypeError "got an unexpected keyword argument 'zero_gama'" from inside create_model.
        ("model_args.zero_gama=True", r"^--set model_args.zero_gama: model 'resnet18' \(ResNet18\) takes no argument "
                                      r"'zero_gama'; did you mean 'zero_gamma'\? valid arguments: \['activation', "),
        ("model_args={'stem_widht': 8}", r"^--set model_args: .*no argument 'stem_widht'; did you mean 'stem_width'"),
        ("model_args.classes=3", r"model_args.classes: \['classes'\] are set by the training job"),
        ("model=resnet5", r"^--set model: Unknown model name='resnet5'\. Did you mean one of \['resnet50'"),
    ],
)
def test_bad_overrides_name_the_key_as_typed(recipe, override, match):
    with pytest.raises(ValueError, match=match):
        apply_overrides(recipe, [override])


def test_good_overrides_pass(recipe):
    cfg = apply_overrides(recipe, ["learning_rate=0.2", "model_args.zero_gamma=False", "optimizer=adamw",
                                   "model=resnet18d"])
    assert (cfg.optim.learning_rate, cfg.model_args["zero_gamma"], cfg.optim.name) == (0.2, False, "adamw")
    cfg.check()


def test_a_model_change_checks_the_recipe_model_args(recipe):
    # The quickstart's ResNet arguments (stem, planes) mean nothing to a VGG.
    with pytest.raises(ValueError, match=r"^--set model: model 'vgg11' \(VGG11\) takes no argument 'stem'"):
        apply_overrides(recipe, ["model=vgg11"])


def test_config_check_names_the_flat_key_for_api_callers():
    with pytest.raises(ValueError, match=r"^`learning_rate` must be a number, received learning_rate='fast'$"):
        resolve_config({"learning_rate": "fast"}).check()
    with pytest.raises(ValueError, match=r"^`optimizer` must be one of"):
        resolve_config({"optim": {"name": "sgdd"}}).check()
    with pytest.raises(ValueError, match="takes no argument 'zero_gama'"):
        resolve_config({"model_args": {"zero_gama": True}}).check()
    check_model_args("resnet18", {"zero_gamma": True, "drop_path_rate": 0.1})


def test_cli_prints_one_line_and_leaves_no_run_folder(tmp_path, capsys):
    output = tmp_path / "run"
    assert cli.main(["train", "digits_quickstart", "--set", "optimizer=sgdd", "--output", str(output)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("keras-cnn train: error: --set `optimizer` must be one of") and err.count("\n") == 1
    assert not output.exists()
