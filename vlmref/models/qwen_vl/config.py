"""Qwen-VL-Chat configuration, in the upstream ``config.json`` field names (``QWenConfig`` of the HF remote code).

``QWenVLConfig.from_pretrained(dir)`` reads a real Qwen/Qwen-VL-Chat folder; ``QWEN_VL_CHAT`` is that file's content
and ``TINY`` the overrides of the tiny test model (real vocabulary, real 448-px / 14-px geometry and 256 image
queries, so the template's 258-position image spans hold; widths and depths shrunk).

>>> cfg = QWenVLConfig(**QWEN_VL_CHAT)
>>> cfg.hidden_size, cfg.visual["width"], cfg.n_queries, cfg.image_start_id
(4096, 1664, 256, 151857)

Sources (each value below is tagged [read] = seen in that source, [inferred] = derived or defaulted):

* ``CFG``: Qwen-VL-Chat ``config.json``: a verbatim copy in a third-party evaluation script (search index id
  11130836921; its ``model_type`` line is edited to ``qwenvl`` in one branch and left ``qwen`` in the other), the same
  values (bar the GPTQ block and dtype flags) in the Qwen-VL-Chat-Int4 ``config.json`` mirrored at
  github.com/x1ngzai/Qwen-VL-Chat-Int4 @1cd721a27dd000fc4cf688c6ad58e614da1d600d.
* ``CODE``: ``modeling_qwen.py`` / ``visual.py`` / ``configuration_qwen.py`` of the same mirror @1cd721a (the HF
  remote code of Qwen-VL-Chat-Int4; identical modules to Qwen-VL-Chat's, checked against peace-zy/Qwen-VL
  ``eval_floor_plan/model/modeling_qwen.py`` @e3898dd, a copy of the later Qwen-VL-Chat file that adds the
  training-time zero-image pass).
"""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

QWEN_VL_CHAT: dict[str, Any] = {
    "vocab_size": 151936,  # CFG [read]
    "hidden_size": 4096,  # CFG [read]
    "num_hidden_layers": 32,  # CFG [read]
    "num_attention_heads": 32,  # CFG [read]
    "kv_channels": 128,  # CFG [read]; head dim, projection = kv_channels * heads = 4096
    "intermediate_size": 22016,  # CFG [read]; w1 and w2 are each intermediate_size // 2 = 11008 wide (CODE QWenMLP)
    "no_bias": True,  # CFG [read]; c_attn keeps its bias (CODE: nn.Linear(h, 3 * proj) with the default bias)
    "layer_norm_epsilon": 1e-6,  # CFG [read]; RMSNorm eps of ln_1/ln_2/ln_f
    "initializer_range": 0.02,  # CFG [read]
    "emb_dropout_prob": 0.0,  # CFG [read]
    "attn_dropout_prob": 0.0,  # CFG [read]
    "seq_length": 2048,  # CFG [read]; logn / dynamic-NTK reference length
    "max_position_embeddings": 8192,  # CFG [read]; not used by the forward (rotary is computed on demand)
    "rotary_emb_base": 10000,  # CFG [read]
    "rotary_pct": 1.0,  # CFG [read]
    "use_dynamic_ntk": True,  # CFG [read]
    "use_logn_attn": True,  # CFG [read]
    "use_flash_attn": "auto",  # Int4 CFG [read] ("auto"); the third-party Chat copy shows false. Unused by vlmref.
    "scale_attn_weights": True,  # CFG [read]
    "tie_word_embeddings": False,  # CFG [read]
    "bf16": False,  # CFG [read]; upstream casts the model itself when one of bf16/fp16/fp32 is true. vlmref ignores
    "fp16": False,  # CFG [read]   these flags: the dtype comes from from_pretrained(dtype=...) / config.torch_dtype
    "fp32": False,  # CFG [read]
    "torch_dtype": "bfloat16",  # CFG [read]
    "use_cache": True,  # CFG [read]
    "tokenizer_type": "QWenTokenizer",  # CFG [read]
    "visual": {
        "heads": 16,  # CFG [read]
        "image_size": 448,  # CFG [read]
        "image_start_id": 151857,  # CFG [read]; <img>; </img> is +1, <imgpad> +2 (CODE QWenModel.forward)
        "layers": 48,  # CFG [read]
        "mlp_ratio": 4.9231,  # CFG [read]; c_fc width int(1664 * 4.9231) = 8192 (CODE VisualAttentionBlock)
        "output_dim": 4096,  # CFG [read]; = LLM hidden size
        "patch_size": 14,  # CFG [read]
        "width": 1664,  # CFG [read]
        # not in config.json, upstream constants: n_queries 256 (CODE VisionTransformer default), resampler heads
        # output_dim // 128 = 32 (CODE), positional_embedding 256 rows bicubic-resized to the patch grid (CODE),
        # visual LayerNorm eps 1e-6 (CODE partial(nn.LayerNorm, eps=1e-6))
    },
}

# Tiny test model: real vocab and image geometry (448 px, 14-px patches, 256 queries -> 258-position spans).
TINY: dict[str, Any] = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "kv_channels": 16,
    "intermediate_size": 256,
    "torch_dtype": "float32",
    "visual": {"width": 32, "layers": 2, "heads": 4, "mlp_ratio": 2.0, "output_dim": 64, "attn_pool_heads": 4},
}


class QWenVLConfig(PretrainedConfig):
    """Qwen-VL(-Chat) config: upstream ``QWenConfig`` fields plus the ``visual`` dict of ``VisionTransformer`` args.

    ``visual`` may carry two vlmref-only keys, used by the tiny model: ``n_queries`` (default 256, upstream's
    constant) and ``attn_pool_heads`` (default ``output_dim // 128``, upstream's rule, which gives 0 heads for a
    64-wide tiny model). ``auto_map`` is dropped so a saved folder never points at remote code it does not contain.
    """

    model_type = "qwen"
    keys_to_ignore_at_inference = ["cache", "past_key_values"]

    def __init__(
        self,
        vocab_size: int = 151936,
        hidden_size: int = 4096,
        num_hidden_layers: int = 32,
        num_attention_heads: int = 32,
        kv_channels: int = 128,
        intermediate_size: int = 22016,
        no_bias: bool = True,
        layer_norm_epsilon: float = 1e-6,
        initializer_range: float = 0.02,
        emb_dropout_prob: float = 0.0,
        attn_dropout_prob: float = 0.0,
        seq_length: int = 2048,
        max_position_embeddings: int = 8192,
        rotary_emb_base: float = 10000,
        rotary_pct: float = 1.0,
        use_dynamic_ntk: bool = True,
        use_logn_attn: bool = True,
        use_flash_attn: Any = "auto",
        scale_attn_weights: bool = True,
        bf16: bool = False,
        fp16: bool = False,
        fp32: bool = False,
        use_cache: bool = True,
        visual: dict[str, Any] | None = None,
        tie_word_embeddings: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("auto_map", None)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.kv_channels = kv_channels
        self.intermediate_size = intermediate_size
        self.no_bias = no_bias
        self.layer_norm_epsilon = layer_norm_epsilon
        self.initializer_range = initializer_range
        self.emb_dropout_prob = emb_dropout_prob
        self.attn_dropout_prob = attn_dropout_prob
        self.seq_length = seq_length
        self.max_position_embeddings = max_position_embeddings
        self.rotary_emb_base = rotary_emb_base
        self.rotary_pct = rotary_pct
        self.use_dynamic_ntk = use_dynamic_ntk
        self.use_logn_attn = use_logn_attn
        self.use_flash_attn = use_flash_attn
        self.scale_attn_weights = scale_attn_weights
        self.bf16, self.fp16, self.fp32 = bf16, fp16, fp32
        self.use_cache = use_cache
        self.visual = dict(QWEN_VL_CHAT["visual"] if visual is None else visual)
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)
        self._validate()

    # ---- derived values ---------------------------------------------------------------------------------------
    @property
    def image_start_id(self) -> int:
        return int(self.visual["image_start_id"])

    @property
    def n_queries(self) -> int:
        return int(self.visual.get("n_queries", 256))

    @property
    def rotary_dim(self) -> int:
        return self.kv_channels if self.rotary_pct == 1.0 else int(self.kv_channels * self.rotary_pct)

    def _validate(self) -> None:
        if self.kv_channels * self.num_attention_heads != self.hidden_size:
            # upstream splits c_attn's output at hidden_size and views heads of hidden_size // heads
            raise ValueError(
                f"kv_channels * num_attention_heads ({self.kv_channels} * {self.num_attention_heads}) must equal "
                f"hidden_size ({self.hidden_size})"
            )
        if int(self.visual["output_dim"]) != self.hidden_size:
            raise ValueError(f"visual.output_dim ({self.visual['output_dim']}) must equal hidden_size ({self.hidden_size})")
        if self.n_queries != int(round(self.n_queries**0.5)) ** 2:
            raise ValueError(f"visual.n_queries ({self.n_queries}) must be a square (the resampler's 2-D grid)")
