"""Encode every golden scenario and seeded samples with the real ms-swift 2.2.0; write the ids as oracle fixtures.

Runs in the oracle venv (``nox -s oracle`` builds it: ms-swift 2.2.0 with the package versions of its era), never
in CI. Needs the real tokenizer files (``../shared/tokenizers`` or ``$VLMREF_TOKENIZERS_DIR``) and the Qwen-VL and
InternLM2 tokenizer code from their model repositories (``$VLMREF_UPSTREAM_DIR``, see ``upstream.py``)::

    python scripts/oracle/make_template_oracle.py --out golden/oracle/templates [--samples 200] [TEMPLATE ...]

Templates registered with ``use_model=True`` read a few things from the model object; ``stand_ins.py`` gives them
objects that supply exactly those (dtype, device, image processors, CogVLM's vision-token count, XComposer2's
embedding rows), so the ids are swift's own. XComposer2 returns embeddings, not ids: its stand-in embedding
writes each id into its row (image rows are -200), and the fixture stores the ids read back from those rows.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# hypothesis keeps a cache folder in the working directory (golden/ while swift reads its images): not there
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", tempfile.mkdtemp(prefix="oracle-hypothesis-"))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from stand_ins import model_stand_in, swift_tokenizer  # noqa: E402

from vlmref.templates.meta import get_template_meta  # noqa: E402
from vlmref.testing.golden import SCENARIO_NAMES, scenario_example  # noqa: E402
from vlmref.testing.oracle_samples import draw_samples  # noqa: E402

TEMPLATES = (
    "qwen", "qwen-vl", "cogvlm", "internlm-xcomposer2", "yi-vl",
    "llava-mistral", "llava-yi", "llama-llava-next", "llava-qwen-instruct",
)
PACKAGES = ("ms-swift", "transformers", "tokenizers", "sentencepiece", "tiktoken", "torch", "peft", "accelerate",
            "modelscope", "datasets", "trl", "numpy", "hypothesis")


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def encode_with_swift(swift_template, sample: dict) -> dict:
    """swift's ids/labels for one sample, or what swift did instead ({} or an exception)."""
    example = copy.deepcopy(sample["example"])
    swift_template.max_length = sample.get("max_length")
    swift_template.truncation_strategy = sample.get("truncation_strategy", "delete")
    try:
        inputs, _ = swift_template.encode(example)
    except Exception as err:  # noqa: BLE001 - the oracle records whatever swift raised
        return {"swift_error": f"{type(err).__name__}: {err}"[:300]}
    if not inputs:
        return {"swift_empty": True}
    if "inputs_embeds" in inputs:  # XComposer2: ids read back from the stand-in rows
        ids = [int(round(v)) for v in inputs["inputs_embeds"][:, 0].tolist()]
        out = {"input_ids": ids, "labels": inputs["labels"]}
        out["im_mask"] = [int(v) for v in inputs["im_mask"][0].tolist()]
        return out
    out = {"input_ids": [int(i) for i in inputs["input_ids"]], "labels": inputs.get("labels")}
    if "token_type_ids" in inputs:
        out["token_type_ids"] = [int(v) for v in inputs["token_type_ids"]]
    return out


def golden_samples(template_type: str) -> list[tuple[str, dict]]:
    out = []
    for scenario in SCENARIO_NAMES:
        example, _reason = scenario_example(template_type, scenario)
        if example is None or scenario.startswith("truncation_"):
            continue
        out.append((scenario, {"example": example}))
    return out


def truncation_samples(swift_template, template_type: str) -> list[tuple[str, dict]]:
    """The golden truncation scenarios, with max_length taken from swift's own (pre-image) length."""
    out = []
    for scenario, strategy in (("truncation_delete", "delete"), ("truncation_left", "truncation_left")):
        example, _ = scenario_example(template_type, scenario)
        if example is None:
            continue
        full = encode_with_swift(swift_template, {"example": example})
        n = len(full.get("input_ids", [])) or 64
        limit = n - 1 if strategy == "delete" else max(1, n // 2)
        out.append((scenario, {"example": example, "max_length": limit, "truncation_strategy": strategy}))
    return out


def build(template_type: str, tok_root: Path, n_samples: int, golden_dir: Path) -> dict:
    from swift.llm import get_template

    tokenizer, tokenizer_info = swift_tokenizer(template_type, tok_root)
    model = model_stand_in(template_type, tokenizer)
    swift_template = get_template(template_type, tokenizer, model=model)
    official = get_template_meta(template_type)
    named = golden_samples(template_type) + truncation_samples(swift_template, template_type)
    drawn = [(f"sample_{i:03d}", s) for i, s in enumerate(draw_samples(template_type, official, n_samples))]
    cases = [{"name": name, **sample, "swift": encode_with_swift(swift_template, sample)} for name, sample in named + drawn]
    return {
        "meta": {
            "template_type": template_type,
            "generator": "nox -s oracle (python scripts/oracle/make_template_oracle.py)",
            "swift": "ms-swift 2.2.0 swift.llm.get_template(template_type, tokenizer, model=stand-in)",
            "tokenizer": tokenizer_info,
            "versions": versions(),
            "images_relative_to": "golden/",
        },
        "cases": cases,
    }


def dump(obj: dict) -> str:
    import re

    text = json.dumps(obj, ensure_ascii=False, indent=1, sort_keys=True)
    return re.sub(r"\[((?:\s*-?\d+,)*\s*-?\d+\s*)\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "golden" / "oracle" / "templates")
    parser.add_argument("--tokenizers", type=Path,
                        default=Path(os.environ.get("VLMREF_TOKENIZERS_DIR", REPO.parent / "shared" / "tokenizers")))
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--time", dest="time_out", type=Path, default=None,
                        help="do not regenerate: time swift's encode of the committed cases, write JSON here")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("templates", nargs="*", default=list(TEMPLATES))
    args = parser.parse_args(argv)
    if not args.tokenizers.is_dir():
        print(f"error: no tokenizer folder at {args.tokenizers} (set VLMREF_TOKENIZERS_DIR)", file=sys.stderr)
        return 2
    golden_dir = REPO / "golden"
    args.out = args.out.resolve()
    args.time_out = args.time_out.resolve() if args.time_out is not None else None
    os.chdir(golden_dir)  # swift reads 'images/…' paths relative to the working directory
    if args.time_out is not None:
        return time_swift(args.out, args.tokenizers, args.templates, args.rounds, args.time_out)
    args.out.mkdir(parents=True, exist_ok=True)
    for template_type in args.templates:
        data = build(template_type, args.tokenizers, args.samples, golden_dir)
        text = dump(data)
        target = args.out / f"{template_type}.json"
        with tempfile.NamedTemporaryFile("w", dir=args.out, delete=False, encoding="utf-8") as tmp:
            tmp.write(text)
        os.replace(tmp.name, target)
        errors = sum(1 for c in data["cases"] if "input_ids" not in c["swift"])
        print(f"{template_type}: {len(data['cases'])} cases ({errors} without ids) "
              f"sha256 {hashlib.sha256(text.encode()).hexdigest()[:12]} -> {target}")
    write_manifest(args.out)
    return 0


def time_swift(fixtures: Path, tok_root: Path, templates: list[str], rounds: int, out: Path) -> int:
    """Best-of-``rounds`` seconds of swift's encode over each committed fixture's cases (one template object,
    its max_length set per case, as swift's own dataset loop keeps one template)."""
    from swift.llm import get_template

    times = {}
    for template_type in templates:
        path = fixtures / f"{template_type}.json"
        if not path.is_file():
            continue
        cases = json.loads(path.read_text(encoding="utf-8"))["cases"]
        tokenizer, _ = swift_tokenizer(template_type, tok_root)
        swift_template = get_template(template_type, tokenizer, model=model_stand_in(template_type, tokenizer))
        best = float("inf")
        for _ in range(rounds):
            examples = [copy.deepcopy(c["example"]) for c in cases]  # swift mutates them; copied outside the clock
            start = time.perf_counter()
            for case, example in zip(cases, examples, strict=True):
                swift_template.max_length = case.get("max_length")
                swift_template.truncation_strategy = case.get("truncation_strategy", "delete")
                try:
                    swift_template.encode(example)
                except Exception:  # noqa: BLE001, S110 - the cases swift fails on are part of the workload
                    pass
            best = min(best, time.perf_counter() - start)
        times[template_type] = {"seconds": best, "cases": len(cases)}
        print(f"{template_type}: ms-swift 2.2.0 encode {best * 1e3:.1f} ms for {len(cases)} cases (best of {rounds})")
    out.write_text(json.dumps({"versions": versions(), "rounds": rounds, "swift": times}, indent=1) + "\n")
    return 0


def write_manifest(out: Path) -> None:
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*.json"))
             if p.name != "MANIFEST.json"}
    manifest = {"generated_by": "nox -s oracle", "versions": versions(), "files": files}
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
