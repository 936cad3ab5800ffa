"""Step 1, the dataset language: the model, the YAML loader with line numbers, the schema and its generated
docs, prestaging, and the import of IceProd's own JSON configs. Expressions and units live in ``common/``
because the pilot evaluates them on the worker too."""
