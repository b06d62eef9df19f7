"""vlmref's own encoder as conformance adapters: ``vlmref.conform.builtin:official`` and ``...:swift_2_2_0``.

``vlmref conform --adapter vlmref.conform.builtin:official`` must be 100 % equal under ``--profile official`` (and
``swift_2_2_0`` under ``--profile swift-2.2.0``): the check that the comparison itself is sound.

>>> official.model_types is None, "internlm-xcomposer2_5-7b-chat" in swift_2_2_0.model_types
(True, False)
"""

from __future__ import annotations

import functools
from typing import Any


class VlmrefEncoder:
    """``encode(model_type, example, **options)`` with vlmref's template of ``profile`` and the real tokenizer."""

    image_placement = "expanded"
    version = ""

    def __init__(self, profile: str) -> None:
        self.profile = profile
        self.name = f"vlmref ({profile})"

    @property
    def model_types(self) -> tuple[str, ...] | None:
        """Every model type whose template the profile has (None: all of them)."""
        from ..models.model_types import MODELS
        from .run import in_profile

        covered = tuple(m for m in MODELS.names() if in_profile(m, self.profile))
        return None if len(covered) == len(MODELS.names()) else covered

    @functools.cache  # noqa: B019 - two module-level instances, kept for the process
    def _tokenizer(self, template_type: str) -> Any:
        from ..templates.meta import get_template_meta
        from ..testing.oracle import tokenizer_factory
        from ..tokenizers.loader import shared_tokenizers_dir

        return tokenizer_factory(template_type, shared_tokenizers_dir())(get_template_meta(template_type,
                                                                                           self.profile))

    def encode(self, model_type: str, example: dict[str, Any], max_length: int | None = None,
               truncation_strategy: str = "delete") -> dict[str, Any]:
        from ..models.model_types import MODELS
        from ..templates.base import Template
        from ..templates.meta import get_template_meta

        template_type = MODELS.get(model_type).template
        meta = get_template_meta(template_type, self.profile)
        template = Template(meta, self._tokenizer(template_type), max_length=max_length,
                            truncation_strategy=truncation_strategy)
        return template.encode(example)


official = VlmrefEncoder("official")
swift_2_2_0 = VlmrefEncoder("swift-2.2.0")
