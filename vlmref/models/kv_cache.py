"""The KV cache's keyword, whichever name the installed transformers gives it.

transformers up to 5.23 hands the cache to ``forward`` / ``prepare_inputs_for_generation`` as ``past_key_values`` and
reads it back from ``outputs.past_key_values``; 5.24 renamed both to ``cache`` and its own decoders accept the old
name through ``deprecate_kwarg``. vlmref's model classes do the same, so generation never depends on which keyword
``generate()`` uses::

    @takes_cache
    def forward(self, input_ids=None, ..., cache=None, ...):   # forward(past_key_values=c) == forward(cache=c)
        ...
        return CausalLMOutputWithPast(logits=logits, **cache_output(cache))

    inner(**{CACHE_KWARG: cache})      # transformers' own modules: the name this transformers version reads
    output_cache(outputs)              # the cache of a model output, without the 5.24 deprecation warning
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from transformers.modeling_outputs import CausalLMOutputWithPast

OLD_NAME = "past_key_values"
#: the name the installed transformers passes the cache under and stores it in model outputs
CACHE_KWARG = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else OLD_NAME

F = TypeVar("F", bound=Callable[..., Any])


def takes_cache(fn: F) -> F:
    """Let ``fn`` (whose parameter is ``cache``) also be called with ``past_key_values=``; both at once is an error."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if OLD_NAME in kwargs:
            old = kwargs.pop(OLD_NAME)
            if kwargs.get("cache") is not None and old is not None and old is not kwargs["cache"]:
                raise TypeError(f"{fn.__qualname__}: pass the KV cache as cache= or past_key_values=, not both")
            if kwargs.get("cache") is None:
                kwargs["cache"] = old
        return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def cache_output(cache: Any) -> dict[str, Any]:
    """The cache as a keyword of a transformers ``ModelOutput`` (``cache`` or ``past_key_values``)."""
    return {CACHE_KWARG: cache}


def output_cache(outputs: Any) -> Any:
    """The KV cache a model returned (``outputs.cache`` in transformers >= 5.24, else ``outputs.past_key_values``)."""
    return getattr(outputs, CACHE_KWARG, None)
