"""Datasets: the documented custom formats, per-model row rules, image loading, named datasets, collation.

The pure layer (formats, rules, images, named datasets) never imports torch; ``collate``/``processors`` do.
"""
