"""Serving Code Llama for real (notebook 07 §4): the commands and client calls for TGI, Inference Endpoints
and vLLM, the blog's GPU guidance for Inference Endpoints, and where each project stands. Shown as text in
the notebook (they need a GPU or an account), not run by the course.
"""

from __future__ import annotations

__all__ = ["ENDPOINT_GPUS", "PROJECT_STATUS", "RECIPES"]

# The blog's Inference Endpoints guidance (GPU per model size).
ENDPOINT_GPUS: dict[str, str] = {
    "7B": "1x Nvidia A10G (24 GB)",
    "13B": "1x Nvidia A100 (80 GB)",
    "34B": "1x Nvidia A100 with bitsandbytes 8-bit/4-bit, or 2x A100 (80 GB)",
    "70B": "not in the blog (released later): 2-4x A100/H100 80 GB with tensor parallelism, or 4-bit on one 80 GB GPU",
}

# Status of each project as checked for this course (mid 2026).
PROJECT_STATUS: dict[str, str] = {
    "TGI": "text-generation-inference: in maintenance mode since Dec 2025, repository archived (read-only) in 2026. "
           "Existing containers and Inference Endpoints still speak its API; for new deployments use vLLM or SGLang.",
    "vLLM": "vLLM: actively developed; OpenAI-compatible server (`vllm serve`), continuous batching (PagedAttention), "
            "tensor parallelism, AWQ/GPTQ/FP8 and bitsandbytes quantization.",
    "transformers serve": "transformers serve: part of transformers 5; OpenAI-compatible, for local use and "
                          "development (no auth), optional continuous batching and bnb quantization.",
    "Inference Endpoints": "Hugging Face Inference Endpoints: managed; the engine is chosen per endpoint "
                           "(vLLM, SGLang, TGI, llama.cpp); the Messages API (/v1/chat/completions) works with all.",
}

# The recipes use the course's client helpers (codellama_course.clients: Sampling, api_chat, api_complete,
# api_infill, openai_client) the way notebook 07 §3 runs them against transformers serve.
RECIPES: dict[str, str] = {
    "tgi_docker": """\
# TGI (text-generation-inference), as in the blog. Needs a GPU and Docker; not run in this course.
model=codellama/CodeLlama-7b-hf
volume=$PWD/data    # share a volume so the weights are downloaded once
docker run --gpus all --shm-size 1g -p 8080:80 -v $volume:/data \\
    -e HF_TOKEN=$HF_TOKEN \\
    ghcr.io/huggingface/text-generation-inference:latest \\
    --model-id $model
# 34B on one A100: add  --quantize bitsandbytes-nf4  (or --quantize bitsandbytes for 8-bit)
# 34B on two GPUs:  add  --num-shard 2""",
    "tgi_generate_curl": """\
# TGI's own API: /generate and /generate_stream (server-sent events)
curl 127.0.0.1:8080/generate -X POST -H 'Content-Type: application/json' \\
    -d '{"inputs": "def fibonacci(n):", "parameters": {"max_new_tokens": 64, "temperature": 0.1, "top_p": 0.9, "do_sample": true, "repetition_penalty": 1.05}}'
curl 127.0.0.1:8080/generate_stream -X POST -H 'Content-Type: application/json' \\
    -d '{"inputs": "def fibonacci(n):", "parameters": {"max_new_tokens": 64}}'""",
    "tgi_text_generation": """\
# Python, TGI's own API (/generate, /generate_stream). Not exercised here: transformers serve has no such route.
from huggingface_hub import InferenceClient
from codellama_course.clients import Sampling
client = InferenceClient(base_url="http://127.0.0.1:8080")   # or your Inference Endpoint URL (+ token=...)
print(client.text_generation("def fibonacci(n):", **Sampling().tgi_kwargs()))
for token in client.text_generation("def fibonacci(n):", stream=True, **Sampling().tgi_kwargs()):
    print(token, end="")""",
    "tgi_messages_api": """\
# TGI's Messages API (/v1/chat/completions, TGI >= 1.4): the same call the course runs against transformers serve.
from huggingface_hub import InferenceClient
from codellama_course.clients import api_chat
client = InferenceClient(base_url="http://127.0.0.1:8080")
api_chat(client, [{"role": "user", "content": "Write a function that reverses a string."}], max_tokens=256)""",
    "inference_endpoint": """\
# Hugging Face Inference Endpoints: deploy codellama/CodeLlama-7b-Instruct-hf from the model page
# (Deploy > Inference Endpoints; GPU per ENDPOINT_GPUS), then use the endpoint URL with the same clients:
from huggingface_hub import InferenceClient
client = InferenceClient(base_url="https://<your-endpoint>.endpoints.huggingface.cloud", token=HF_TOKEN)
api_chat(client, messages, max_tokens=256)                    # Messages API
client.text_generation("def fibonacci(n):", max_new_tokens=64)  # only on a TGI-engine endpoint""",
    "vllm_serve": """\
# vLLM: OpenAI-compatible server with continuous batching. 34B/70B across GPUs with tensor parallelism.
vllm serve codellama/CodeLlama-7b-hf --port 8000
vllm serve codellama/CodeLlama-34b-Instruct-hf --tensor-parallel-size 2 --port 8000
vllm serve codellama/CodeLlama-70b-Instruct-hf --tensor-parallel-size 4 --max-model-len 4096 --port 8000""",
    "vllm_client": """\
# The same completions/infilling code as against transformers serve; only the flavor of the penalty changes.
from codellama_course.clients import api_complete, api_infill, openai_client
client = openai_client("http://127.0.0.1:8000")
api_complete(client, "def fibonacci(n):", model="codellama/CodeLlama-7b-hf", flavor="vllm")
api_infill(client, tokenizer, "def f(x):\\n    <FILL_ME>\\n    return y", model="codellama/CodeLlama-7b-hf", flavor="vllm")""",
    "transformers_serve": """\
# transformers' own server (what LocalServer starts), from a terminal:
transformers serve ./my-model-folder --host 127.0.0.1 --port 8000 --device cpu
# on a GPU, 4-bit with bitsandbytes, with continuous batching:
transformers serve codellama/CodeLlama-13b-hf --quantization bnb-4bit --continuous-batching""",
}
