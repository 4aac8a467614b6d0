"""Train the nano Code Llama shipped in ``codellama_course/nano_model/``.

    python scripts/train_nano.py                      # the full, seeded run (about 80 min on 2 cores)
    python scripts/train_nano.py --max-steps 60 --out /tmp/nano-toy   # a quick toy run

Steps: collect permissively licensed Python (stdlib + installed packages), train a SentencePiece
tokenizer shaped like Code Llama's, train a Llama model with Code Llama's FIM recipe, and save a
Hugging Face model folder. While it trains, the latest checkpoint is exported to
``WORK/checkpoint`` after every evaluation, with the loss log beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import platform
import time
from pathlib import Path

from codellama_course import nano

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=ROOT / ".nano_work", help="scratch folder (corpus cache, checkpoints)")
    parser.add_argument("--out", type=Path, default=nano.NANO_DIR, help="where the final model folder is written")
    parser.add_argument("--max-steps", type=int, default=nano.NanoConfig.max_steps)
    parser.add_argument("--max-seconds", type=float, default=None, help="stop early after this long")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.time()

    corpus_cache = args.work / "corpus.pkl"
    if corpus_cache.exists():
        corpus = pickle.loads(corpus_cache.read_bytes())
    else:
        corpus = nano.collect_corpus()
        corpus_cache.write_bytes(pickle.dumps(corpus))
    print(f"corpus: {len(corpus.train)} training files ({corpus.characters / 1e6:.1f} M chars), "
          f"{len(corpus.validation)} held-out files, {len(corpus.sources)} sources", flush=True)

    tokenizer_dir = args.work / "tokenizer"
    sp_model = nano.train_tokenizer(corpus.train, tokenizer_dir, seed=args.seed)
    cfg = nano.NanoConfig(max_steps=args.max_steps, seed=args.seed)
    nano.save_hf_tokenizer(sp_model, tokenizer_dir, model_max_length=cfg.context * 4)
    codec = nano.SentencePieceCodec(sp_model)

    def meta(log: nano.TrainingLog) -> dict:
        last = log.rows[-1]
        evaluated = [r for r in log.rows if "val_loss" in r]
        return {
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
        log.save(folder / "training_log.csv")

    model, log = nano.train(cfg, codec, corpus.train, corpus.validation, checkpoint=checkpoint,
                            max_seconds=args.max_seconds)
    model = model.to(torch.bfloat16)  # ships at half the size; load(precision=...) picks the dtype
    nano.save_model(model, tokenizer_dir, args.out, meta=meta(log))
    log.save(args.out / "training_log.csv")
    print(f"saved {args.out}", flush=True)


if __name__ == "__main__":
    main()
