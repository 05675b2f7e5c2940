"""The application's workflows: they compose the library's stages and are never imported by it."""
