"""fp16 vs NF4 on a real-size Code Llama, on a CUDA GPU: memory and batch-1 decode speed next to the
memory-bandwidth roofline (notebook 05, deep dive "how fast can decoding be?").

    python benchmarks/bench_gpu_quantization.py                 # CodeLlama-7B's architecture
    python benchmarks/bench_gpu_quantization.py --size 13b --new-tokens 64 --json results.json
    python benchmarks/bench_gpu_quantization.py --markdown results.md   # notebook 05's results table

Nothing is downloaded: the model is built with CodeLlama-7B's exact configuration (from the course's registry)
and random weights, directly on the GPU, in fp16; after measuring it, its decoder Linear layers are
quantized to NF4 (double quantization, blocks of 64, fp16 compute) in place, as bitsandbytes does when
``from_pretrained`` gets ``BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", ...)``.
Weights do not change speed or memory, so random ones measure the same thing as Meta's.

Decode speed: greedy, batch 1, ``--new-tokens`` tokens after a ``--prompt-tokens`` prompt, timed as
generate(prompt + N+1 tokens) − generate(prompt + 1 token), so the prompt's prefill is not counted.
Roofline: a decode step reads every weight once (plus the KV cache), so tokens/s ≤ bandwidth ÷ bytes per token.

On a machine without CUDA this prints why it skips and exits 0 (CI never needs a GPU).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def llama_config(variant):
    """A transformers ``LlamaConfig`` with exactly the numbers of a registry variant (``get_variant("7b")``)."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=variant.vocab_size, hidden_size=variant.hidden_size, intermediate_size=variant.intermediate_size,
        num_hidden_layers=variant.num_layers, num_attention_heads=variant.num_heads,
        num_key_value_heads=variant.num_kv_heads, head_dim=variant.head_dim,
        max_position_embeddings=variant.context_length or 16384, rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": variant.rope_theta},
        tie_word_embeddings=variant.tie_word_embeddings, bos_token_id=1, eos_token_id=2, pad_token_id=None,
    )


def build_model(config, dtype, device):
    """Random weights, created on ``device`` (no host copy, no download)."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model.eval()


def quantize_nf4_(model, compute_dtype, *, double_quant: bool = True, blocksize: int = 64) -> int:
    """Replace every decoder Linear by a bitsandbytes NF4 ``Linear4bit``, on the device it is on, one at a time
    (so the fp16 copy of only one layer exists at once). ``lm_head`` and embeddings stay. Returns the count."""
    import bitsandbytes as bnb
    import torch

    count = 0
    for layer in model.model.layers:
        for parent in (layer.self_attn, layer.mlp):
            for name in LINEARS:
                lin = getattr(parent, name, None)
                if not isinstance(lin, torch.nn.Linear):
                    continue
                device = lin.weight.device
                q = bnb.nn.Linear4bit(lin.in_features, lin.out_features, bias=lin.bias is not None,
                                      compute_dtype=compute_dtype, compress_statistics=double_quant,
                                      quant_type="nf4", device="meta")
                q.weight = bnb.nn.Params4bit(lin.weight.data, requires_grad=False, blocksize=blocksize,
                                             compress_statistics=double_quant, quant_type="nf4",
                                             module=q)._quantize(device)
                if lin.bias is not None:
                    q.bias = torch.nn.Parameter(lin.bias.data, requires_grad=False)
                setattr(parent, name, q)
                del lin
                count += 1
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return count


def decode_tokens_per_s(model, *, prompt_tokens: int, new_tokens: int, vocab_size: int) -> float:
    import torch

    device = next(model.parameters()).device
    ids = torch.randint(3, vocab_size, (1, prompt_tokens), device=device, generator=None)
    gen = dict(do_sample=False, pad_token_id=0)

    def timed(n):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        model.generate(ids, max_new_tokens=n, min_new_tokens=n, **gen)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    with torch.inference_mode():
        timed(4)  # warm-up: kernels, allocator
        first = min(timed(1) for _ in range(2))
        full = min(timed(new_tokens + 1) for _ in range(2))
    return new_tokens / max(full - first, 1e-9)


_GPU_PATTERNS = [  # (regex on torch's device name, name in lessons.GPUS); A100 40/80 by memory
    (r"\bT4\b", "T4"), (r"\bL4\b", "L4"), (r"\bA10G\b", "A10G"), (r"\b3090\b", "3090"), (r"\b4090\b", "4090"),
    (r"\bA100\b", "A100"), (r"\bH100\b", "H100"), (r"\bH200\b", "H200"),
]


def gpu_for_name(device_name: str, memory_gib: float):
    """The entry of ``codellama_course.lessons.GPUS`` for a torch device name, or None (then pass --bandwidth-gbs)."""
    from codellama_course.lessons import get_gpu

    for pattern, key in _GPU_PATTERNS:
        if re.search(pattern, device_name, re.I):
            if key == "A100":
                key = "A100 80" if memory_gib > 60 else "A100 40"
            return get_gpu(key)
    return None


def markdown_report(data: dict) -> str:
    """The figures as notebook 05's placeholder shows them: date, GPU, fp16/NF4 memory, tokens/s, share of the
    roofline. ``data`` is what ``--json`` writes."""
    gib = lambda x: f"{x:.2f} GiB"  # noqa: E731
    lines = [f"*Measured on {data['date']} on {data['gpu']} ({data['gpu_memory_gib']} GiB, compute capability "
             f"{data['compute_capability']}) by `benchmarks/bench_gpu_quantization.py`: {data['model']}; batch 1, "
             f"greedy, {data['new_tokens']} new tokens after a {data['prompt_tokens']}-token prompt; torch "
             f"{data['torch']}, transformers {data['transformers']}, {data['bitsandbytes']}.*",
             "",
             "| precision | GPU memory | estimate | decode | roofline | of roofline |",
             "|---|---|---|---|---|---|"]
    for r in data["results"]:
        roof = f"{r['roofline_tokens_per_s']:.1f} tokens/s" if r.get("roofline_tokens_per_s") else "n/a"
        share = f"{100 * r['share_of_roofline']:.0f} %" if r.get("share_of_roofline") else "n/a"
        lines.append(f"| {r['precision']} | {gib(r['gpu_memory_gib'])} | {gib(r['estimate_gib'])} | "
                     f"{r['decode_tokens_per_s']:.1f} tokens/s | {roof} | {share} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="7b", help="registry variant whose architecture to build (default 7b)")
    p.add_argument("--precisions", default="fp16,nf4", help="comma-separated: fp16, nf4")
    p.add_argument("--prompt-tokens", type=int, default=32)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--bandwidth-gbs", type=float, default=None, help="memory bandwidth if the GPU is not known")
    p.add_argument("--json", default=None, help="also write the results to this file")
    p.add_argument("--markdown", default=None, help="also write them as notebook 05's results paragraph and table")
    a = p.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("skip: no CUDA GPU here. This benchmark builds a real-size Code Llama on a GPU; CI and the CPU "
              "notebooks never need it. Nothing was measured.")
        return 0

    from codellama_course import estimate_memory, get_variant
    from codellama_course.hardware import bitsandbytes_status
    from codellama_course.lessons import bytes_read_per_token

    variant = get_variant(a.size)
    props = torch.cuda.get_device_properties(0)
    memory_gib = props.total_memory / 2**30
    gpu = gpu_for_name(props.name, memory_gib)
    bandwidth = a.bandwidth_gbs or (gpu.bandwidth_gbs if gpu else None)
    # fp16 first: NF4 is made from the fp16 model, in place
    precisions = sorted({x.strip().lower() for x in a.precisions.split(",") if x.strip()}, key=lambda x: x != "fp16")
    context = a.prompt_tokens + a.new_tokens // 2  # average KV cache read during the timed decode
    bnb_ok, bnb_why = bitsandbytes_status()
    import transformers

    header = {
        "date": dt.date.today().isoformat(), "gpu": props.name, "gpu_memory_gib": round(memory_gib, 1),
        "compute_capability": f"{props.major}.{props.minor}", "bandwidth_gbs": bandwidth,
        "torch": torch.__version__, "transformers": transformers.__version__, "bitsandbytes": bnb_why,
        "model": f"CodeLlama-{variant.size} architecture ({variant.n_params / 1e9:.2f}B parameters), random weights",
        "prompt_tokens": a.prompt_tokens, "new_tokens": a.new_tokens,
    }
    print(" · ".join(f"{k}: {v}" for k, v in header.items()))
    if bandwidth is None:
        print(f"(unknown GPU {props.name!r}: pass --bandwidth-gbs to get the roofline)")

    results = []
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    try:
        model = build_model(llama_config(variant), torch.float16, "cuda")
    except torch.OutOfMemoryError:
        print(f"{variant.name} in fp16 does not fit on {props.name} ({memory_gib:.1f} GiB); try --size 7b")
        return 1
    build_s = time.perf_counter() - t0
    for precision in precisions:
        if precision == "nf4":
            if not bnb_ok:
                print(f"nf4: skipped ({bnb_why})")
                continue
            n = quantize_nf4_(model, torch.float16)
            print(f"quantized {n} Linear layers to NF4")
            storage = "4bit"
        elif precision == "fp16":
            storage = "fp16"
        else:
            print(f"{precision}: unknown here (use fp16, nf4)")
            continue
        allocated = torch.cuda.memory_allocated() - base
        est = estimate_memory(variant, storage, compute_dtype="fp16")
        tps = decode_tokens_per_s(model, prompt_tokens=a.prompt_tokens, new_tokens=a.new_tokens,
                                  vocab_size=variant.vocab_size)
        per_token = bytes_read_per_token(variant, storage, context)
        roof = bandwidth * 1e9 / per_token if bandwidth else None
        results.append({
            "precision": precision, "gpu_memory_gib": allocated / 2**30, "estimate_gib": est.weights_gib,
            "ratio": allocated / est.weights_bytes, "decode_tokens_per_s": tps,
            "gb_read_per_token": per_token / 1e9, "roofline_tokens_per_s": roof,
            "share_of_roofline": tps / roof if roof else None,
        })
    peak = (torch.cuda.max_memory_allocated() - base) / 2**30

    print(f"\nbuilt in {build_s:.0f} s; peak GPU memory {peak:.2f} GiB")
    print(f"{'precision':9} {'GPU memory':>11} {'estimate':>9} {'ratio':>6} {'decode':>11} {'GB/token':>9} "
          f"{'roofline':>11} {'of roofline':>11}")
    for r in results:
        roof = f"{r['roofline_tokens_per_s']:7.1f} t/s" if r["roofline_tokens_per_s"] else "        n/a"
        share = f"{100 * r['share_of_roofline']:10.0f}%" if r["share_of_roofline"] else "        n/a"
        print(f"{r['precision']:9} {r['gpu_memory_gib']:7.2f} GiB {r['estimate_gib']:5.2f} GiB {r['ratio']:6.3f}"
              f" {r['decode_tokens_per_s']:7.1f} t/s {r['gb_read_per_token']:9.2f} {roof} {share}")
    data = {**header, "peak_gib": peak, "results": results}
    if a.json:
        Path(a.json).write_text(json.dumps(data, indent=2) + "\n")
        print(f"wrote {a.json}")
    if a.markdown:
        Path(a.markdown).write_text(markdown_report(data), encoding="utf-8")
        print(f"wrote {a.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
