"""The application's workflows: they compose the library's stages and are never imported by it.

``pipeline`` (the stages as functions on paths, and the demo), ``compare`` (the controlled comparison),
``study`` (a whole study from a config file) and ``adapt`` (few-shot adaptation to a new instrument).
"""
