#!/usr/bin/env python3
"""Python/PyTorch peer of `linkner bench train`: one training pass over N sentences.

The same Hugging Face encoder plus a linear token-classification head (labels on the first
sub-token of each word, the last CoNLL column as tag), AdamW (weight decay 0.01), gradient-norm
clipping 1.0, dropout on, batch `--batch-size`, `torch.set_num_threads(--threads)`. Batches are
length-bucketed like linkner's trainer: a shuffled order sorted by token length, cut into
batches, the batches shuffled (seed 42). The timed region covers tokenization, forward, backward
and optimizer steps (model loading excluded); `cpu_seconds` is `time.process_time()` over it
(all threads). `--device cuda` runs on the GPU (the clock stops after
`torch.cuda.synchronize()`), `--bf16` under `torch.autocast(device, torch.bfloat16)`.
Prints one JSON line:

  {"threads": N, "batch_size": B, "sentences": S, "steps": K, "seconds": ..,
   "sentences_per_s": .., "final_loss": .., "peak_rss_mb": .., "torch": "..", ...}
"""

import argparse
import json
import random
import resource
import sys
import time


def read_conll(path):
    sentences, words, tags = [], [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                if words:
                    sentences.append((words, tags))
                    words, tags = [], []
                continue
            cols = line.split()
            if cols[0] == "-DOCSTART-":
                continue
            words.append(cols[0])
            tags.append(cols[-1] if len(cols) > 1 else "O")
    if words:
        sentences.append((words, tags))
    return sentences


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--encoder", required=True, help="Hugging Face encoder folder")
    ap.add_argument("--data", required=True, help="CoNLL training file")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--limit", type=int, default=640, help="first N sentences")
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast")
    args = ap.parse_args()

    import torch
    import transformers
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
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
    encoder = AutoModel.from_pretrained(args.encoder).to(device)

    data = read_conll(args.data)[: args.limit]
    tag_names = sorted({t for _, tags in data for t in tags})
    tag_id = {t: i for i, t in enumerate(tag_names)}
    head = torch.nn.Linear(encoder.config.hidden_size, len(tag_names)).to(device)
    params = list(encoder.parameters()) + list(head.parameters())
    optim = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    encoder.train()
    head.train()
    drop = torch.nn.Dropout(encoder.config.hidden_dropout_prob)

    t0 = time.perf_counter()
    c0 = time.process_time()
    lengths = [
        len(ids)
        for ids in tokenizer(
            [w for w, _ in data], is_split_into_words=True, truncation=False
        )["input_ids"]
    ]
    rng = random.Random(args.seed)
    order = list(range(len(data)))
    rng.shuffle(order)
    order.sort(key=lambda i: lengths[i])
    bs = max(1, args.batch_size)
    batches = [order[i : i + bs] for i in range(0, len(order), bs)]
    rng.shuffle(batches)
    loss_value = None
    for idx in batches:
        words = [data[i][0] for i in idx]
        enc = tokenizer(
            words,
            is_split_into_words=True,
            truncation=False,
            padding=True,
            return_tensors="pt",
        )
        labels = torch.full(enc["input_ids"].shape, -100, dtype=torch.long)
        for b, i in enumerate(idx):
            seen = set()
            for k, w in enumerate(enc.word_ids(b)):
                if w is not None and w not in seen:
                    seen.add(w)
                    labels[b, k] = tag_id[data[i][1][w]]
        enc = {k: v.to(device, non_blocking=True) for k, v in enc.items()}
        labels = labels.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            hidden = encoder(**enc).last_hidden_state
            logits = head(drop(hidden))
        loss = torch.nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100
        )
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optim.step()
        loss_value = float(loss.detach())
    if cuda:
        torch.cuda.synchronize(device)
    secs = time.perf_counter() - t0
    cpu = time.process_time() - c0
    result = {
        "threads": torch.get_num_threads(),
        "device": str(device),
        "bf16": args.bf16,
        "batch_size": bs,
        "sentences": len(data),
        "tokens": sum(lengths),
        "steps": len(batches),
        "seconds": secs,
        "cpu_seconds": cpu,
        "sentences_per_s": len(data) / max(secs, 1e-9),
        "final_loss": loss_value,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
