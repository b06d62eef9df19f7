"""Stand-ins for imports of the upstream modeling code that cannot be installed beside torch 2.13.0 here.

Each stand-in computes exactly what the upstream code calls (documented per function) and records a note in
``STAND_INS[layout]``, which ``make_model_oracle.py`` writes into that layout's oracle.json.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import torch

STAND_INS: dict[str, list[str]] = {}  # layout -> notes on stand-ins/monkeypatches used for upstream imports




def install_torchvision_standin(layout_name: str) -> None:
    """torchvision cannot be pip-installed beside torch 2.13.0 here. The upstream code only builds
    ``transforms.Compose([Resize(size, interpolation=BICUBIC), ToTensor(), Normalize(mean, std)])`` (and, for
    XComposer2.5, ``transforms.functional.resize`` / ``pad``) and applies it to PIL images; this stand-in, written
    from torchvision's documented semantics for PIL input (Resize = ``PIL.Image.resize`` with that filter, the
    ``(h, w)`` size given as ``(w, h)`` to PIL, an int = the shorter side; ToTensor = uint8 HWC -> float CHW / 255;
    Normalize = ``(x - mean) / std``), is put in ``sys.modules`` as ``torchvision`` before the upstream import."""
    note = ("torchvision: sys.modules stand-in (Compose, Resize, ToTensor, Normalize, InterpolationMode, "
            "functional.pad, functional.resize) written from torchvision's documented PIL semantics; torchvision "
            "cannot be installed "
            "beside torch 2.13.0")
    STAND_INS.setdefault(layout_name, []).append(note)
    if "torchvision" in sys.modules and getattr(sys.modules["torchvision"], "VLMREF_STAND_IN", False):
        return
    from enum import Enum

    from PIL import Image

    class InterpolationMode(Enum):
        NEAREST = "nearest"
        BILINEAR = "bilinear"
        BICUBIC = "bicubic"

    _PIL = {InterpolationMode.NEAREST: Image.Resampling.NEAREST, InterpolationMode.BILINEAR: Image.Resampling.BILINEAR,
            InterpolationMode.BICUBIC: Image.Resampling.BICUBIC}

    class Compose:
        def __init__(self, transforms):
            self.transforms = list(transforms)

        def __call__(self, x):
            for t in self.transforms:
                x = t(x)
            return x

    class Resize:
        def __init__(self, size, interpolation=InterpolationMode.BILINEAR, max_size=None, antialias=True):
            self.size, self.interpolation = size, interpolation

        def __call__(self, img):
            if isinstance(self.size, int):
                w, h = img.size
                short, long = (w, h) if w <= h else (h, w)
                new_short, new_long = self.size, int(self.size * long / short)
                size = (new_short, new_long) if w <= h else (new_long, new_short)
            else:
                size = (self.size[1], self.size[0])
            return img.resize(size, _PIL[self.interpolation])

    class ToTensor:
        def __call__(self, pic):
            arr = np.array(pic, dtype=np.uint8, copy=True)
            if arr.ndim == 2:
                arr = arr[:, :, None]
            return torch.from_numpy(arr).permute(2, 0, 1).contiguous().to(torch.float32).div(255)

    class Normalize:
        def __init__(self, mean, std, inplace=False):
            self.mean, self.std = mean, std

        def __call__(self, t):
            m = torch.as_tensor(self.mean, dtype=t.dtype)[:, None, None]
            s = torch.as_tensor(self.std, dtype=t.dtype)[:, None, None]
            return (t - m) / s

    def resize(img, size, interpolation=InterpolationMode.BILINEAR, max_size=None, antialias=True):
        return Resize(size, interpolation)(img)  # transforms.functional.resize for PIL input

    def pad(img, padding, fill=0, padding_mode="constant"):  # transforms.functional.pad for PIL input
        if padding_mode != "constant":
            raise NotImplementedError(padding_mode)
        fill = tuple(fill) if isinstance(fill, (list, tuple)) else fill
        left, top, right, bottom = (padding,) * 4 if isinstance(padding, int) else (
            (padding[0], padding[1], padding[0], padding[1]) if len(padding) == 2 else tuple(padding))
        w, h = img.size
        canvas = Image.new(img.mode, (w + left + right, h + top + bottom),
                           fill if isinstance(fill, tuple) else (fill,) * len(img.getbands()))
        canvas.paste(img, (left, top))
        return canvas

    tv = types.ModuleType("torchvision")
    tv.VLMREF_STAND_IN = True
    tr = types.ModuleType("torchvision.transforms")
    fn = types.ModuleType("torchvision.transforms.functional")
    fn.pad, fn.resize, fn.InterpolationMode = pad, resize, InterpolationMode
    tr.Compose, tr.Resize, tr.ToTensor, tr.Normalize, tr.InterpolationMode = Compose, Resize, ToTensor, Normalize, \
        InterpolationMode
    tr.functional = fn
    tv.transforms = tr
    sys.modules.update({"torchvision": tv, "torchvision.transforms": tr, "torchvision.transforms.functional": fn})


def install_xformers_standin(layout_name: str) -> None:
    """CogVLM's visual.py calls only ``xformers.ops.memory_efficient_attention(q, k, v, scale=...)`` on
    (B, L, H, D) tensors without a bias: softmax(q k^T * scale) v. xformers needs CUDA builds; this stand-in computes
    exactly that with plain matmuls (the formula of visual.py's own unused ``Attention.attention``)."""
    STAND_INS.setdefault(layout_name, []).append(
        "xformers: sys.modules stand-in, ops.memory_efficient_attention(q, k, v, scale) = softmax(q k^T scale) v "
        "on (B, L, H, D) (no bias, no dropout, as visual.py calls it)")
    if "xformers" in sys.modules:
        return

    def memory_efficient_attention(query, key, value, attn_bias=None, p=0.0, scale=None):
        if attn_bias is not None or p:
            raise NotImplementedError("stand-in: no attn_bias / dropout")
        q, k, v = (t.transpose(1, 2) for t in (query, key, value))  # (B, H, L, D)
        scale = q.shape[-1] ** -0.5 if scale is None else scale
        w = torch.matmul(q * scale, k.transpose(-2, -1)).softmax(-1)
        return torch.matmul(w, v).transpose(1, 2).contiguous()  # xformers returns a contiguous (B, L, H, D)

    xf = types.ModuleType("xformers")
    ops = types.ModuleType("xformers.ops")
    ops.memory_efficient_attention = memory_efficient_attention
    xf.ops = ops
    sys.modules.update({"xformers": xf, "xformers.ops": ops})
