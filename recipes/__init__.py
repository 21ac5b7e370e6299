"""Training recipes: configs as code, one module per recipe (installed as `keras_cnn.recipes`)."""
