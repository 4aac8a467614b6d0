"""Fine-tuning lessons (notebook 09): an interruption on cue, and training memory measured in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

# Importing transformers' Trainer imports bitsandbytes: the core's quantization module first installs the log
# filters that drop bitsandbytes' machine-dependent notes about optional kernels (stored outputs stay stable).
from .. import quantization  # noqa: F401

__all__ = ["InterruptAt", "measure_training_peak"]


def _callback_base() -> type:
    from transformers import TrainerCallback

    return TrainerCallback


class InterruptAt(_callback_base()):
    """A Trainer callback that raises ``KeyboardInterrupt`` right after the checkpoint of step ``step``
    is saved: what pressing Stop does to a long run, on cue, so that resuming can be shown and tested.

    Taught in: notebook 09 §3.
    """

    def __init__(self, step: int) -> None:
        self.step = step

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step >= self.step:
            raise KeyboardInterrupt(f"interrupted after the checkpoint of step {state.global_step}")


_MEASURE = r"""
import json, sys, torch
spec = json.loads(sys.argv[1])
torch.manual_seed(0)
from transformers import AutoModelForCausalLM
from codellama_course.registry import nano_dir
model = AutoModelForCausalLM.from_pretrained(nano_dir(), dtype=torch.float32)
model.config.use_cache = False
if spec["method"] == "lora":
    import warnings
    warnings.filterwarnings("ignore", category=FutureWarning)
    from peft import get_peft_model
    from codellama_course.finetuning import lora_config
    model = get_peft_model(model, lora_config(model, r=spec["lora_r"], dropout=0.05))
if spec["gradient_checkpointing"]:
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if spec["method"] == "lora":
        model.enable_input_require_grads()
model.train()
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
ids = torch.randint(3, model.config.vocab_size, (spec["batch_size"], spec["seq_len"]))

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

before = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
for _ in range(2):
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
print(json.dumps({"before": before, "peak": status("VmHWM")}))
"""


def measure_training_peak(method: str = "lora", *, seq_len: int = 256, batch_size: int = 8, lora_r: int = 8,
                          gradient_checkpointing: bool = False, timeout: float = 300) -> int:
    """Bytes that two training steps of nano (fp32, AdamW) add to the process's resident memory at its peak,
    measured in a fresh Python process (Linux: ``/proc/self/status``), to set beside
    ``estimate_training_memory(...)`` minus its weights.

    Taught in: notebook 09 §6.
    """
    if method not in ("full", "lora"):
        raise ValueError(f"nano is measured with method 'full' or 'lora' (not {method!r}): QLoRA needs a GPU")
    if not os.path.exists("/proc/self/clear_refs"):
        raise RuntimeError("measuring peak memory needs Linux (/proc/self/clear_refs)")
    spec = {"method": method, "seq_len": seq_len, "batch_size": batch_size, "lora_r": lora_r,
            "gradient_checkpointing": gradient_checkpointing}
    package_root = str(Path(__file__).resolve().parents[2])  # the same codellama_course as this process
    # MALLOC_MMAP_THRESHOLD_: every large tensor gets its own mapping, returned to the OS when freed, so the peak
    # resident size follows the live tensors instead of what glibc's heap keeps cached (2x more, and erratic)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "MALLOC_MMAP_THRESHOLD_": "65536",
           "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)}
    done = subprocess.run([sys.executable, "-c", _MEASURE, json.dumps(spec)], capture_output=True, text=True,
                          timeout=timeout, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"the measuring process failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["peak"] - result["before"]
