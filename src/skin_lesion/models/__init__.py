"""Models: the architecture table, in-model preprocessing, the ``SkinLesionCNN`` factory and
reading saved ``.h5`` files."""
