"""The application's workflows: they compose the library's stages and are never imported by it. They read the
commands' folders and write their results (reports, figures, CSV and JSON files); the library computes.

One module per command or stage: ``pipeline`` (split, pretrain: the DDPM, the baselines, the RC-DiT; features,
cluster, and the demo), ``datasets`` (fetch a dataset, summarise one, write synthetic plankton), ``probe``,
``fusion``, ``compare`` (the controlled comparison), ``study`` (a whole study from a config file), ``zeroshot``,
and the field-use commands ``evaluate`` (another labelled dataset), ``shifts`` (the robustness suite),
``predict``, ``calibrate``, ``adapt`` (few-shot adaptation to a new instrument) and ``export_model`` (a bundle as a
model folder to ship). ``config`` holds their settings; ``bench`` the helpers of ``benchmarks/`` and
``experiments/``.
"""
