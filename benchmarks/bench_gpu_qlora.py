"""QLoRA on a 7B-shaped model, on a CUDA GPU: a few training steps and the peak memory next to
``estimate_training_memory(..., method="qlora")`` (notebook 09, section 6).

    python benchmarks/bench_gpu_qlora.py                       # CodeLlama-7B's architecture, T4 settings
    python benchmarks/bench_gpu_qlora.py --seq-len 1024 --batch-size 2 --json results.json

Nothing is downloaded: the model has CodeLlama-7B's configuration and random weights, built on the GPU
in 16-bit, its decoder Linear layers quantized in place to NF4 with double quantization
(``bench_gpu_quantization.quantize_nf4_``); then what ``prepare_model_for_kbit_training`` does
(norms and embeddings in fp32, gradient checkpointing), LoRA on every Linear, AdamW, ``--steps`` steps.
Peak memory is ``torch.cuda.max_memory_allocated`` over the training steps (the CUDA context is not in it).

On a machine without CUDA this prints why it skips and exits 0 (CI never needs a GPU).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="7b")
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("bench_gpu_qlora: skipped, no CUDA GPU here (torch.cuda.is_available() is False).")
        return 0

    from bench_gpu_quantization import build_model, llama_config, quantize_nf4_
    from peft import get_peft_model

    from codellama_course.finetuning import lora_config
    from codellama_course.registry import get_variant
    from codellama_course.training_memory import estimate_training_memory

    variant = get_variant(a.size)
    compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    model = build_model(llama_config(variant), compute, "cuda")
    quantize_nf4_(model, compute)
    for param in model.parameters():  # prepare_model_for_kbit_training: frozen, non-quantized ones in fp32
        param.requires_grad_(False)
        if param.dtype in (torch.float16, torch.bfloat16):
            param.data = param.data.float()
    model.config.use_cache = False
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    model = get_peft_model(model, lora_config(model, r=a.lora_r))
    model.train()
    optimizer = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-4)
    ids = torch.randint(3, variant.vocab_size, (a.batch_size, a.seq_len), device="cuda")
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        with torch.autocast("cuda", dtype=compute):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - t0) / a.steps
    peak = torch.cuda.max_memory_allocated()
    est = estimate_training_memory(variant, "qlora", seq_len=a.seq_len, batch_size=a.batch_size, lora_r=a.lora_r,
                                   gradient_checkpointing=True)
    props = torch.cuda.get_device_properties(0)
    data = {"gpu": props.name, "gpu_memory_gib": props.total_memory / 2**30, "size": a.size, "seq_len": a.seq_len,
            "batch_size": a.batch_size, "lora_r": a.lora_r, "steps": a.steps, "seconds_per_step": seconds,
            "peak_allocated_gib": peak / 2**30, "estimate_gib": est.total_gib,
            "estimate_parts_gib": {k: v / 2**30 for k, v in est.parts().items()},
            "estimate_over_measured": est.total_bytes / peak, "loss": float(loss)}
    print(f"{props.name}: QLoRA {a.size}, batch {a.batch_size} x {a.seq_len} tokens, r={a.lora_r}: "
          f"peak {peak / 2**30:.2f} GiB measured, {est.total_gib:.2f} GiB estimated "
          f"({est.total_bytes / peak:.2f}x), {seconds:.2f} s/step")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
