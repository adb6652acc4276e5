#!/usr/bin/env python3
"""Python/PyTorch peer of `linkner bench tagger`: the same encoder forward in `transformers`.

Reads a CoNLL file (words = first column, sentences separated by blank lines, -DOCSTART-
skipped), tokenizes the words of each batch with `is_split_into_words=True` (no truncation,
padding to the longest sentence of the batch) and runs the encoder forward under
`torch.inference_mode()` in three settings:

  as_given       batches in input order
  length_sorted  batches of sentences sorted by token length
  bf16           length-sorted, under `torch.autocast("cpu", dtype=torch.bfloat16)`

The timed region of each setting covers tokenization and the forward passes. One small batch is
run untimed first (per setting). Prints one JSON line:

  {"threads": N, "batch_size": B, "sentences": S, "torch": "...", "transformers": "...",
   "settings": {"as_given": {"seconds": .., "sentences_per_s": .., "peak_rss_mb": ..}, ...},
   "ru_maxrss_mb": ..}

`peak_rss_mb` of a setting is VmHWM after resetting it through /proc/self/clear_refs before the
setting (Linux); `ru_maxrss_mb` is the process-wide `resource.getrusage(RUSAGE_SELF).ru_maxrss`.
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
    ap.add_argument("--limit", type=int, default=None, help="first N sentences")
    ap.add_argument("--settings", default="as_given,length_sorted,bf16")
    args = ap.parse_args()

    import torch
    import transformers
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(args.encoder)
    # The MiniLM tokenizer.json pads/truncates to 128: turn both off.
    if getattr(tokenizer, "_tokenizer", None) is not None:
        tokenizer._tokenizer.no_truncation()
        tokenizer._tokenizer.no_padding()
    model = AutoModel.from_pretrained(args.encoder)
    model.eval()

    sentences = read_conll(args.data)
    if args.limit is not None:
        sentences = sentences[: args.limit]
    lengths = [
        len(ids)
        for ids in tokenizer(sentences, is_split_into_words=True, truncation=False)["input_ids"]
    ]
    by_length = sorted(range(len(sentences)), key=lambda i: lengths[i])
    bs = max(1, args.batch_size)

    def batches(order):
        return [order[i : i + bs] for i in range(0, len(order), bs)]

    def run(batch_list, bf16):
        with torch.inference_mode():
            for idx in batch_list:
                enc = tokenizer(
                    [sentences[i] for i in idx],
                    is_split_into_words=True,
                    truncation=False,
                    padding=True,
                    return_tensors="pt",
                )
                if bf16:
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        model(**enc)
                else:
                    model(**enc)

    plans = {
        "as_given": (batches(list(range(len(sentences)))), False),
        "length_sorted": (batches(by_length), False),
        "bf16": (batches(by_length), True),
    }
    out = {}
    for name in [s for s in args.settings.split(",") if s]:
        plan, bf16 = plans[name]
        warm = [list(range(min(8, len(sentences))))]
        run(warm, bf16)
        reset_peak_rss()
        t0 = time.perf_counter()
        run(plan, bf16)
        secs = time.perf_counter() - t0
        out[name] = {
            "seconds": secs,
            "sentences_per_s": len(sentences) / max(secs, 1e-9),
            "peak_rss_mb": vm_hwm_mb(),
        }
    result = {
        "threads": torch.get_num_threads(),
        "batch_size": bs,
        "sentences": len(sentences),
        "tokens": sum(lengths),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "settings": out,
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
