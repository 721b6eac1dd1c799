"""Model artifacts that are not a single Keras file: a KerasHub preset directory (`kerashub`) and a
SavedModel with no Keras model behind it (`savedmodel_graph`)."""
