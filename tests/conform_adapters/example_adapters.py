"""Adapters for tests/test_conform.py: vlmref's own encoder, changed the ways other frameworks differ."""

from __future__ import annotations

from vlmref.conform.builtin import official


def drops_last_label(model_type, example, **options):
    """A planted bug: the last supervised position loses its label."""
    enc = dict(official.encode(model_type, example, **options))
    labels = list(enc["labels"] or [])
    supervised = [i for i, v in enumerate(labels) if v != -100]
    if supervised:
        labels[supervised[-1]] = -100
    enc["labels"] = labels
    return enc


drops_last_label.model_types = ("qwen-vl-chat",)
drops_last_label.name = "drops-last-label"


def one_placeholder_per_image(model_type, example, **options):
    """One -200 per image instead of the expanded run (as ms-swift 2.2.0's LLaVA templates), no image_spans."""
    enc = official.encode(model_type, example, **options)
    ids = list(enc["input_ids"])
    labels = list(enc["labels"]) if enc["labels"] is not None else [-100] * len(ids)  # None: a generation prompt
    for start, length in sorted(enc["image_spans"], reverse=True):
        ids[start:start + length] = [-200]
        labels[start:start + length] = [-100]
    return {"input_ids": ids, "labels": labels}


one_placeholder_per_image.model_types = ("llava1d6-mistral-7b-instruct",)
one_placeholder_per_image.image_placement = "placeholder"


def not_callable():
    return None


not_callable.encode = "nope"


def without_truncation(model_type, example, **options):
    """Declares that it takes no max_length: the truncation cases are skipped, not failed."""
    if options:
        raise TypeError(f"unexpected options {sorted(options)}")
    return official.encode(model_type, example)


without_truncation.model_types = ("yi-vl-6b-chat",)
without_truncation.supports_truncation = False


def chatty(model_type, example, **options):
    """Prints to stdout on every call, as some frameworks' loggers do (the worker keeps its channel clean)."""
    print(f"[chatty] encoding for {model_type}")
    return official.encode(model_type, example, **options)


chatty.model_types = ("yi-vl-6b-chat",)
print("[chatty] module imported")
