"""One module per model family; importing this package registers every template."""

from . import cogvlm, internlm_xcomposer2, llava, qwen, yi_vl  # noqa: F401
