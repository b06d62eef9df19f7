"""``vlmref conform``: check another framework's template encoder against vlmref's reference encoding.

An adapter is a callable ``encode(model_type, example, **options) -> {"input_ids", "labels", ...}`` named as
``module:function`` (``adapter.py``). ``cases.py`` gives the cases (the golden scenarios and the ms-swift 2.2.0
oracle samples of each model type's template), ``compare.py`` normalises image runs and finds the first difference,
``run.py`` runs the adapter over them, explains differences by vlmref's recorded deviations and ``report.py`` writes
the markdown and JSON. The pure layer: importable without torch (the reference needs the tokenizer extra).
"""
