#!/usr/bin/env python3
"""Python/PyTorch peer of `linkner bench tagger`: the same encoder forward in `transformers`.

Reads a CoNLL file (words = first column, sentences separated by blank lines, -DOCSTART-
skipped), tokenizes the words of each batch with `is_split_into_words=True` (no truncation,
padding to the longest sentence of the batch) and runs the encoder forward under
`torch.inference_mode()` on `--device` (cpu or cuda) in three settings:

  as_given       batches in input order
  length_sorted  batches of sentences sorted by token length
  bf16           length-sorted, under `torch.autocast(device_type, dtype=torch.bfloat16)`

for each batch size of `--batch-sizes` (default: `--batch-size`). Two timings per setting:

  end to end     tokenization, the copy to the device and the forward passes (what linkner's
                 end-to-end figure is compared with)
  encoder only   the forward passes alone, on batches tokenized and copied to the device
                 before the clock starts

One small batch runs untimed first (per setting); on CUDA the clock stops after
`torch.cuda.synchronize()`. Prints one JSON line:

  {"threads": N, "device": "cpu", "batch_size": B, "sentences": S, "tokens": T,
   "torch": "...", "transformers": "...",
   "settings": {"as_given": {"seconds": .., "sentences_per_s": .., "peak_rss_mb": ..,
                             "encoder_seconds": .., "encoder_sentences_per_s": ..}, ...},
   "sweep": [{"setting": "as_given", "batch_size": 32, "seconds": .., ...}, ...],
   "ru_maxrss_mb": ..}

`settings` holds the first batch size of the sweep. `peak_rss_mb` of a setting is VmHWM after
resetting it through /proc/self/clear_refs before the setting (Linux); on CUDA `peak_gpu_mb` is
`torch.cuda.max_memory_allocated` of the setting. `ru_maxrss_mb` is the process-wide
`resource.getrusage(RUSAGE_SELF).ru_maxrss`.
"""

import argparse
import json
import resource
import sys
import time


def read_conll(path):
    sentences, words = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                if words:
                    sentences.append(words)
                    words = []
                continue
            first = line.split()[0]
            if first == "-DOCSTART-":
                continue
            words.append(first)
    if words:
        sentences.append(words)
    return sentences


def reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def vm_hwm_mb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--encoder", required=True, help="Hugging Face encoder folder")
    ap.add_argument("--data", required=True, help="CoNLL file")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--batch-sizes", default=None, help="comma-separated sweep (default: --batch-size)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--limit", type=int, default=None, help="first N sentences")
    ap.add_argument("--repeat", type=int, default=1, help="repeat the data N times")
    ap.add_argument("--settings", default="as_given,length_sorted,bf16")
    args = ap.parse_args()

    import torch
    import transformers
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda and not torch.cuda.is_available():
        print(f"--device {args.device}: torch sees no CUDA device", file=sys.stderr)
        return 2
    tokenizer = AutoTokenizer.from_pretrained(args.encoder)
    # The MiniLM tokenizer.json pads/truncates to 128: turn both off.
    if getattr(tokenizer, "_tokenizer", None) is not None:
        tokenizer._tokenizer.no_truncation()
        tokenizer._tokenizer.no_padding()
    model = AutoModel.from_pretrained(args.encoder).to(device)
    model.eval()

    sentences = read_conll(args.data)
    if args.limit is not None:
        sentences = sentences[: args.limit]
    sentences = sentences * max(1, args.repeat)
    lengths = [
        len(ids)
        for ids in tokenizer(sentences, is_split_into_words=True, truncation=False)["input_ids"]
    ]
    by_length = sorted(range(len(sentences)), key=lambda i: lengths[i])
    sizes = [int(b) for b in (args.batch_sizes or str(args.batch_size)).split(",") if b.strip()]

    def batches(order, bs):
        return [order[i : i + bs] for i in range(0, len(order), bs)]

    def sync():
        if cuda:
            torch.cuda.synchronize(device)

    def encode(idx):
        enc = tokenizer(
            [sentences[i] for i in idx],
            is_split_into_words=True,
            truncation=False,
            padding=True,
            return_tensors="pt",
        )
        return {k: v.to(device, non_blocking=True) for k, v in enc.items()}

    def forward(enc, bf16):
        if bf16:
            with torch.autocast(device.type, dtype=torch.bfloat16):
                model(**enc)
        else:
            model(**enc)

    def run(batch_list, bf16):
        with torch.inference_mode():
            for idx in batch_list:
                forward(encode(idx), bf16)
        sync()

    def run_encoder(encoded, bf16):
        with torch.inference_mode():
            for enc in encoded:
                forward(enc, bf16)
        sync()

    plans = {
        "as_given": (lambda bs: batches(list(range(len(sentences))), bs), False),
        "length_sorted": (lambda bs: batches(by_length, bs), False),
        "bf16": (lambda bs: batches(by_length, bs), True),
    }
    sweep = []
    for bs in sizes:
        for name in [s for s in args.settings.split(",") if s]:
            plan_of, bf16 = plans[name]
            plan = plan_of(max(1, bs))
            warm = [list(range(min(8, len(sentences))))]
            run(warm, bf16)
            reset_peak_rss()
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            t0 = time.perf_counter()
            run(plan, bf16)
            secs = time.perf_counter() - t0
            row = {
                "setting": name,
                "batch_size": bs,
                "seconds": secs,
                "sentences_per_s": len(sentences) / max(secs, 1e-9),
                "peak_rss_mb": vm_hwm_mb(),
            }
            if cuda:
                row["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
            with torch.inference_mode():
                encoded = [encode(idx) for idx in plan]
            sync()
            t0 = time.perf_counter()
            run_encoder(encoded, bf16)
            secs = time.perf_counter() - t0
            del encoded
            row["encoder_seconds"] = secs
            row["encoder_sentences_per_s"] = len(sentences) / max(secs, 1e-9)
            sweep.append(row)
    first = sizes[0] if sizes else args.batch_size
    result = {
        "threads": torch.get_num_threads(),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if cuda else None,
        "batch_size": first,
        "sentences": len(sentences),
        "tokens": sum(lengths),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "settings": {r["setting"]: r for r in sweep if r["batch_size"] == first},
        "sweep": sweep,
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
