"""Train the nano Code Llama shipped in ``codellama_course/nano_model/``.

    python scripts/train_nano.py                      # a seeded run of the paper's recipe (phase 1 below)
    python scripts/train_nano.py --max-steps 60 --out /tmp/nano-toy   # a quick toy run

The shipped model was trained in three phases, each continuing the one before (see its model card):

    python scripts/train_nano.py --max-steps 5000 --max-seconds 5400 --out P1    # 1: the paper's recipe
    python scripts/train_nano.py --continue-from P1 --out P2 --short-spans --short-middles 0.3 \
        --line-middles 0.4 --learning-rate 1.5e-3 --warmup-steps 100 --seed 1 --max-steps 500   # 2
    python scripts/train_nano.py --continue-from P2 --short-spans --short-middles 0.2 --line-middles 0.5 \
        --single-lines 0.5 --learning-rate 1.2e-3 --warmup-steps 50 --seed 2 --max-seconds 2820  # 3

Steps: collect permissively licensed Python (stdlib + installed packages), train a SentencePiece
tokenizer shaped like Code Llama's, train a Llama model with Code Llama's FIM recipe, and save a
Hugging Face model folder. While it trains, the latest checkpoint is exported to
``WORK/checkpoint`` after every evaluation, with the loss log beside it.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import pickle
import platform
import shutil
import time
from pathlib import Path

from codellama_course import nano, nano_data
from codellama_course.tokenizer import MetaTokenizer

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=ROOT / ".nano_work", help="scratch folder (corpus cache, checkpoints)")
    parser.add_argument("--out", type=Path, default=nano.NANO_DIR, help="where the final model folder is written")
    parser.add_argument("--max-steps", type=int, default=nano.NanoConfig.max_steps)
    parser.add_argument("--max-seconds", type=float, default=None, help="stop early after this long")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--continue-from", type=Path, default=None,
                        help="a saved nano model folder to keep training (its tokenizer is reused)")
    parser.add_argument("--short-spans", action="store_true",
                        help="log-uniform document lengths of 1-80 lines: many short FIM middles, which teach EOT")
    parser.add_argument("--short-middles", type=float, default=0.0, metavar="RATE",
                        help="share of FIM documents whose middle length is drawn log-uniformly (short, like an "
                             "editor's one-line gap) instead of from two uniform cut points")
    parser.add_argument("--line-middles", type=float, default=0.0, metavar="RATE",
                        help="share of FIM documents whose middle is 1-8 whole lines (line-level FIM)")
    parser.add_argument("--single-lines", type=float, default=0.0, metavar="SHARE",
                        help="of the line-level middles, the share that is exactly one line (the rest: 1-8 lines)")
    parser.add_argument("--learning-rate", type=float, default=nano.NanoConfig.learning_rate)
    parser.add_argument("--warmup-steps", type=int, default=nano.NanoConfig.warmup_steps)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.time()

    corpus_cache = args.work / "corpus.pkl"
    if corpus_cache.exists():
        corpus = pickle.loads(corpus_cache.read_bytes())
    else:
        corpus = nano_data.collect_corpus()
        corpus_cache.write_bytes(pickle.dumps(corpus))
    print(f"corpus: {len(corpus.train)} training files ({corpus.characters / 1e6:.1f} M chars), "
          f"{len(corpus.validation)} held-out files, {len(corpus.sources)} sources", flush=True)

    cfg = nano.NanoConfig(max_steps=args.max_steps, seed=args.seed, learning_rate=args.learning_rate,
                          warmup_steps=args.warmup_steps)
    start_from, earlier = None, None
    if args.continue_from is not None:
        from transformers import LlamaForCausalLM

        tokenizer_dir = args.work / "continued_from"  # a copy: --out may be the same folder
        shutil.rmtree(tokenizer_dir, ignore_errors=True)
        shutil.copytree(args.continue_from, tokenizer_dir)
        start_from = LlamaForCausalLM.from_pretrained(tokenizer_dir, dtype=torch.float32)
        earlier = json.loads((tokenizer_dir / "training_meta.json").read_text())
        earlier.pop("corpus", None)
        earlier_log = list(csv.DictReader((tokenizer_dir / "training_log.csv").open()))
        cfg = dataclasses.replace(cfg, **{k: v for k, v in earlier["config"].items()
                                          if k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                                   "num_attention_heads", "context", "rope_theta")})
    else:
        tokenizer_dir = args.work / "tokenizer"
        sp_model = nano_data.train_tokenizer(corpus.train, tokenizer_dir, seed=args.seed)
        nano_data.save_hf_tokenizer(sp_model, tokenizer_dir, model_max_length=cfg.context * 4)
        earlier_log = []
    if args.short_spans:
        cfg = dataclasses.replace(cfg, span_lines=(1, 80), log_uniform_spans=True)
    cfg = dataclasses.replace(cfg, short_middle_rate=args.short_middles, line_middle_rate=args.line_middles,
                              single_line_share=args.single_lines)
    codec = MetaTokenizer.from_file(tokenizer_dir / "tokenizer.model")
    offset = {key: float(earlier_log[-1][key]) if earlier_log else 0.0 for key in ("step", "tokens", "seconds")}
    phase = int(earlier_log[-1].get("phase") or 1) + 1 if earlier_log else 1

    def whole_log(log: nano.TrainingLog) -> nano.TrainingLog:
        """This run's rows after the earlier run's, with steps, tokens and seconds counted from the start."""
        rows = [{"phase": 1, **{k: v for k, v in row.items() if v != ""}} for row in earlier_log]
        for row in log.rows:
            shifted = dict(row, phase=phase)
            for key in offset:
                shifted[key] = round(row[key] + offset[key], 1) if key == "seconds" else int(row[key] + offset[key])
            rows.append(shifted)
        return nano.TrainingLog(rows)

    def meta(log: nano.TrainingLog) -> dict:
        last = log.rows[-1]
        evaluated = [r for r in log.rows if "val_loss" in r]
        return {
            **({"continued_from": earlier} if earlier else {}),
            "config": dataclasses.asdict(cfg),
            "steps": last["step"],
            "tokens": last["tokens"],
            "seconds": last["seconds"],
            "tokens_per_second": round(last["tokens"] / max(last["seconds"], 1e-9)),
            "final_train_loss": last["loss"],
            "held_out": evaluated[-1] if evaluated else None,
            "hardware": f"{platform.processor() or platform.machine()}, {args.threads} threads, {os.cpu_count()} cores",
            "torch": torch.__version__,
            "corpus": {
                "training_files": len(corpus.train),
                "training_characters": corpus.characters,
                "held_out_files": len(corpus.validation),
                "sources": [dataclasses.asdict(s) for s in corpus.sources],
            },
            "wall_seconds": round(time.time() - started),
        }

    def checkpoint(model, step: int, log: nano.TrainingLog) -> None:
        folder = args.work / "checkpoint"
        nano.save_model(model, tokenizer_dir, folder, meta=meta(log))
        whole_log(log).save(folder / "training_log.csv")

    model, log = nano.train(cfg, codec, corpus.train, corpus.validation, checkpoint=checkpoint,
                            max_seconds=args.max_seconds, start_from=start_from)
    model = model.to(torch.bfloat16)  # ships at half the size; load(precision=...) picks the dtype
    nano.save_model(model, tokenizer_dir, args.out, meta=meta(log))
    whole_log(log).save(args.out / "training_log.csv")
    print(f"saved {args.out}", flush=True)


if __name__ == "__main__":
    main()
