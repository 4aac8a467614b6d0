"""Run one cell in a fresh kernel of this interpreter and print what a learner sees, as JSON.

    python run_cell.py CELL_FILE   ->   {"status": "ok" | "error", "outputs": [{"output_type": ..., ...}]}

Used by scripts/colab_stack.py inside the Colab-stack environment (jupyter_client is what Colab's kernel uses)."""

import json
import sys

from jupyter_client.manager import start_new_kernel

OUTPUT_TYPES = ("stream", "error", "execute_result", "display_data")

code = open(sys.argv[1], encoding="utf-8").read()
outputs = []
km, kc = start_new_kernel(kernel_name="python3")
try:
    reply = kc.execute_interactive(
        code, timeout=600,
        output_hook=lambda msg: outputs.append({"output_type": msg["msg_type"], **msg["content"]})
        if msg["msg_type"] in OUTPUT_TYPES else None)
finally:
    kc.stop_channels()
    km.shutdown_kernel(now=True)
json.dump({"status": reply["content"]["status"], "outputs": outputs}, sys.stdout)
