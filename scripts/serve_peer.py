#!/usr/bin/env python3
"""Python peer of `linkner serve` (issue 21): the same trained linkner SpanNER tagger behind
FastAPI + uvicorn, in PyTorch + transformers.

The tagger folder is one written by `linkner train` (`model.safetensors` with burn's tensor
names, `tagger.json`, `tokenizer.json`). Everything linkner does from a raw text to its local
entities is re-implemented here from crates/linkner-core/src/words.rs (words with char offsets),
crates/linkner-tagger/src/tokenize.rs (word pieces, windows), span.rs (span enumeration, shape
features), model.rs (span head) and tagger.rs (softmax, greedy non-overlapping decoding):

  words     extended grapheme clusters (`regex` `\\X`), separators, CJK, punctuation joins
            (hyphen, ampersand, decimals, thousands, dotted abbreviations, apostrophes, clitics)
  tokens    tokenizer.json with padding/truncation off, words as pre-tokenized input; an empty
            word gets [UNK]; [CLS] ... [SEP]; a sentence longer than the window is cut into
            overlapping windows exactly as `plan_windows` does
  spans     every span of <= max_span_width words; representation = states of the first
            sub-token of its first word and the last sub-token of its last word, the width
            embedding and 19 shape features; Linear -> exact GELU -> Linear; softmax
  decoding  spans whose most probable class is an entity, greedily by probability (ties: first
            word), no overlap; char offsets into the original text

The encoder is `transformers.BertModel` (BertConfig from tagger.json's `encoder` section) with
the burn weights renamed and the Linear weights transposed (burn stores `[in, out]`).

HTTP (the shape of `linkner serve`):
  POST /v1/annotate  {"text": "..."} | {"texts": [...]} | {"documents": [{"id":..,"text":..}]}
                     -> {"annotations": [{"sentence": {"text", "tokens"},
                                          "entities": [{"entity": {"start","end","text","label",
                                          "score"}, "span": {...}, "local_label", "local_prob",
                                          "local_probs", "provenance": {"source": "local"}}]}]}
  GET  /healthz      200 {"status": "ok"}

Concurrency: one uvicorn worker (the event loop parses and answers), one inference thread with
`torch.set_num_threads(--threads)`. With `--max-batch N` (default 32) the inference thread takes
every request waiting in its queue (up to N documents) into one forward pass: the dynamic
batching a production Python server would use, and what linkner serve does (its hub shares
tagger micro-batches between callers). `--max-batch 1` is one request per forward.

Agreement check (same tagger?): `--check` runs the peer in-process and `linkner predict` on the
first `--check-n` tweets of the TwitterNER test set (words joined by one space, one raw text
per line) and prints the word-split and entity agreement as JSON.

  python scripts/serve_peer.py --model ~/.cache/linkner/models/twitterner-minilm-ce --port 8100
  python scripts/serve_peer.py --model DIR --check --linkner target/debug/linkner
"""

import argparse
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from functools import lru_cache

import regex

# ----------------------------------------------------------------------------- words.rs

_GRAPHEME = regex.compile(r"\X")
_P_ALPHA = regex.compile(r"\p{Alphabetic}")
_P_UPPER = regex.compile(r"\p{Uppercase}")
_P_LOWER = regex.compile(r"\p{Lowercase}")
_P_NUMERIC = regex.compile(r"[\p{Nd}\p{Nl}\p{No}]")  # Rust char::is_numeric
_P_WHITE = regex.compile(r"\p{White_Space}")
_P_CONTROL = regex.compile(r"\p{Cc}")


@lru_cache(maxsize=65536)
def is_alphabetic(c):
    return _P_ALPHA.match(c) is not None


@lru_cache(maxsize=65536)
def is_numeric(c):
    return _P_NUMERIC.match(c) is not None


def is_alphanumeric(c):
    return is_alphabetic(c) or is_numeric(c)


@lru_cache(maxsize=65536)
def is_uppercase(c):
    return _P_UPPER.match(c) is not None


@lru_cache(maxsize=65536)
def is_lowercase(c):
    return _P_LOWER.match(c) is not None


def is_ascii_digit(c):
    return c is not None and "0" <= c <= "9"


def is_invisible(c):
    return c in "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e" or "\ufe00" <= c <= "\ufe0f"


@lru_cache(maxsize=65536)
def is_separator(c):
    return _P_WHITE.match(c) is not None or _P_CONTROL.match(c) is not None or is_invisible(c)


def is_cjk(c):
    o = ord(c)
    return (
        0x3040 <= o <= 0x30FF
        or 0x3400 <= o <= 0x4DBF
        or 0x4E00 <= o <= 0x9FFF
        or 0xF900 <= o <= 0xFAFF
        or 0x20000 <= o <= 0x2FA1F
    )


SEP, WORD, CJK, PUNCT = 0, 1, 2, 3


class Unit:
    __slots__ = ("start", "end", "cls", "base", "invisible")

    def __init__(self, start, end, cls, base, invisible):
        self.start, self.end, self.cls, self.base, self.invisible = start, end, cls, base, invisible


def units(text):
    out = []
    pos = 0
    for g in _GRAPHEME.findall(text):
        n = len(g)
        lead = 0
        while lead < n and is_separator(g[lead]):
            lead += 1
        if lead == n:
            out.append(Unit(pos, pos + n, SEP, g[0], all(is_invisible(c) for c in g)))
        else:
            if lead > 0:
                sep = g[:lead]
                out.append(Unit(pos, pos + lead, SEP, sep[0], all(is_invisible(c) for c in sep)))
            base = g[lead]
            if is_cjk(base):
                cls = CJK
            elif is_alphanumeric(base):
                cls = WORD
            else:
                cls = PUNCT
            out.append(Unit(pos + lead, pos + n, cls, base, False))
        pos += n
    return out


CLITICS = ("s", "t", "re", "ve", "ll", "d", "m")


def following_word(chars, us, i):
    s = []
    j = i + 1
    end = us[i].end if i < len(us) else 0
    while j < len(us):
        u = us[j]
        if u.start != end or u.cls != WORD:
            break
        s.extend(chars[u.start : u.end])
        end = u.end
        j += 1
    return "".join(s), j


def is_clitic(chars, us, i):
    w, _ = following_word(chars, us, i)
    return w.lower() in CLITICS


def is_abbreviation(chars, w, us, i):
    cw = chars[w[0] : w[1]]
    alternating = len(cw) % 2 == 1 and all(
        is_alphabetic(c) if k % 2 == 0 else c == "." for k, c in enumerate(cw)
    )
    if not alternating:
        return False
    if "." in cw:
        return True
    nxt, j = following_word(chars, us, i)
    return (
        len(nxt) == 1
        and all(is_alphabetic(c) for c in nxt)
        and j < len(us)
        and us[j].base == "."
        and us[j - 1].end == us[j].start
    )


def split_words(text):
    """Char ranges (start, end) of the words of `text`, as linkner_core::split_words."""
    chars = list(text)
    us = units(text)
    words = []
    cur = None
    for i, u in enumerate(us):
        attached = cur if (cur is not None and cur[1] == u.start) else None
        prev = chars[attached[1] - 1] if attached is not None else None
        nxt = us[i + 1] if (i + 1 < len(us) and us[i + 1].start == u.end) else None
        next_is_word = nxt is not None and nxt.cls == WORD
        if u.cls == SEP:
            joins = (
                u.invisible
                and prev is not None
                and is_alphanumeric(prev)
                and next_is_word
                and attached is not None
            )
            if joins:
                cur = (attached[0], u.end)
            elif cur is not None:
                words.append(cur)
                cur = None
        elif u.cls == CJK:
            if cur is not None:
                words.append(cur)
                cur = None
            words.append((u.start, u.end))
        elif u.cls == WORD:
            if attached is not None:
                cur = (attached[0], u.end)
            else:
                if cur is not None:
                    words.append(cur)
                cur = (u.start, u.end)
        else:
            c = u.base
            single = u.end - u.start == 1
            next_base = nxt.base if nxt is not None else None
            prev_alnum = prev is not None and is_alphanumeric(prev)
            join = False
            if single:
                if c in ("-", "\u2010", "&"):
                    join = prev_alnum and next_is_word
                elif c == ",":
                    join = is_ascii_digit(prev) and is_ascii_digit(next_base)
                elif c == ".":
                    decimal = is_ascii_digit(prev) and is_ascii_digit(next_base)
                    join = decimal or (
                        attached is not None and is_abbreviation(chars, attached, us, i)
                    )
                elif c in ("'", "\u2019"):
                    join = (
                        prev is not None
                        and is_alphabetic(prev)
                        and next_is_word
                        and not is_clitic(chars, us, i)
                    )
            if join:
                cur = (attached[0] if attached is not None else u.start, u.end)
            elif (
                c in ("'", "\u2019")
                and single
                and prev is not None
                and is_alphabetic(prev)
                and is_clitic(chars, us, i)
            ):
                if cur is not None:
                    words.append(cur)
                cur = (u.start, u.end)
            else:
                if cur is not None:
                    words.append(cur)
                    cur = None
                words.append((u.start, u.end))
    if cur is not None:
        words.append(cur)
    return words


# ----------------------------------------------------------------------------- span.rs

WORD_SHAPE_FEATURES = 9
SPAN_SHAPE_FEATURES = 2 * WORD_SHAPE_FEATURES + 1


def word_shape(word, sentence_initial):
    b = lambda x: 1.0 if x else 0.0  # noqa: E731
    letters = [c for c in word if is_alphabetic(c)]
    first_alnum = next((c for c in word if is_alphanumeric(c)), None)
    first_upper = first_alnum is not None and is_uppercase(first_alnum)
    all_upper = bool(letters) and all(not is_lowercase(c) for c in letters)
    all_lower = bool(letters) and all(not is_uppercase(c) for c in letters)
    has_digit = any(is_numeric(c) for c in word)
    all_digit = all(is_numeric(c) or c in ",.-/" for c in word) and has_digit
    no_alnum = not any(is_alphanumeric(c) for c in word)
    mixed = not all_upper and any(is_uppercase(c) for c in word[1:])
    n = len(word)
    inner_punct = any(0 < i < n - 1 and not is_alphanumeric(c) for i, c in enumerate(word))
    return [
        b(first_upper),
        b(all_upper),
        b(all_lower),
        b(has_digit),
        b(all_digit),
        b(no_alnum),
        b(mixed),
        b(inner_punct),
        b(sentence_initial),
    ]


def span_shape(shapes, start, end):
    all_cap = all(s[0] > 0.5 or s[5] > 0.5 for s in shapes[start:end])
    return shapes[start] + shapes[end - 1] + [1.0 if all_cap else 0.0]


# ----------------------------------------------------------------------------- tokenize.rs


def plan_windows(counts, budget, max_width, context):
    """linkner_tagger::tokenize::plan_windows: (word_start, word_end, core_start, core_end)."""
    n = len(counts)
    budget = max(budget, 1)
    cost = lambda i: min(max(counts[i], 1), budget)  # noqa: E731
    windows = []
    if n == 0:
        return windows

    def extend(a):
        b, total = a, 0
        while b < n and total + cost(b) <= budget:
            total += cost(b)
            b += 1
        return max(b, a + 1)

    a, core_start = 0, 0
    while True:
        b = extend(a)
        while a < core_start and b < min(n, core_start + max(max_width, 1)):
            a += 1
            b = extend(a)
        if b >= n:
            windows.append((a, n, core_start, n))
            return windows
        reach = max(max_width - 1, 0)
        core_end = max(b - (reach + context), 0)
        if core_end <= core_start:
            core_end = max(b - reach, 0)
        if core_end <= core_start:
            core_end = core_start + 1
        windows.append((a, b, core_start, core_end))
        core_start = core_end
        a = max(max(core_end - context, 0), a + 1)


# ----------------------------------------------------------------------------- the tagger


def _hf_name(burn):
    """The transformers BertModel name of a burn encoder tensor, and whether to transpose."""
    parts = burn.split(".")
    assert parts[0] == "encoder", burn
    rest = parts[1:]
    leaf = {"gamma": "weight", "beta": "bias"}.get(rest[-1], rest[-1])
    if rest[0] == "embeddings":
        mod = rest[1]
        if mod == "layer_norm":
            return f"embeddings.LayerNorm.{leaf}", False
        return f"embeddings.{mod}.{leaf}", False
    assert rest[0] == "layers", burn
    i, mod = rest[1], rest[2]
    target = {
        "query": "attention.self.query",
        "key": "attention.self.key",
        "value": "attention.self.value",
        "attention_output": "attention.output.dense",
        "attention_norm": "attention.output.LayerNorm",
        "intermediate": "intermediate.dense",
        "output": "output.dense",
        "output_norm": "output.LayerNorm",
    }[mod]
    transpose = leaf == "weight" and not mod.endswith("_norm")
    return f"encoder.layer.{i}.{target}.{leaf}", transpose


class PeerTagger:
    """The linkner SpanNER tagger of a `linkner train` folder, in PyTorch."""

    def __init__(self, model_dir, threads=2, bf16=False):
        import torch
        from safetensors.torch import load_file
        from tokenizers import Tokenizer
        from transformers import BertConfig, BertModel

        self.torch = torch
        self.bf16 = bf16
        torch.set_num_threads(threads)
        with open(os.path.join(model_dir, "tagger.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        m = cfg["model"]
        enc = m["encoder"]
        if enc["kind"] != "bert":
            raise SystemExit(f"encoder kind {enc['kind']}: this peer implements bert only")
        self.max_span_width = m["max_span_width"]
        self.max_tokens = cfg["max_tokens"]
        self.window_context = cfg["window_context"]
        self.labels = ["O"] + [t["name"] for t in cfg["schema"]["types"]]
        self.non_entity = cfg["schema"].get("non_entity", {}).get("name", "O")
        self.pad_id = enc["pad_token_id"]
        bert_cfg = BertConfig(
            vocab_size=enc["vocab_size"],
            hidden_size=enc["hidden_size"],
            num_hidden_layers=enc["num_layers"],
            num_attention_heads=enc["num_heads"],
            intermediate_size=enc["intermediate_size"],
            max_position_embeddings=enc["max_position_embeddings"],
            type_vocab_size=enc["type_vocab_size"],
            layer_norm_eps=enc["layer_norm_eps"],
            pad_token_id=enc["pad_token_id"],
            hidden_act=enc["hidden_act"],
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
        self.encoder = BertModel(bert_cfg, add_pooling_layer=False)
        self.encoder.eval()
        weights = load_file(os.path.join(model_dir, "model.safetensors"))
        state = {}
        for k, v in weights.items():
            if k.startswith("encoder."):
                name, transpose = _hf_name(k)
                state[name] = v.t().contiguous() if transpose else v
        missing, unexpected = self.encoder.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("position_ids")]
        if missing or unexpected:
            raise SystemExit(f"weights: missing {missing}, unexpected {unexpected}")
        # Span head: burn Linear weights are [in, out].
        self.width_embedding = weights["width_embedding.weight"]  # [max_width, width_dim]
        self.hidden_w = weights["hidden.weight"]  # [2h + width + 19, hidden_dim]
        self.hidden_b = weights["hidden.bias"]
        self.cls_w = weights["classifier.weight"]  # [hidden_dim, classes]
        self.cls_b = weights["classifier.bias"]
        h = enc["hidden_size"]
        wd = self.width_embedding.shape[1]
        # First layer split per input part (the same arithmetic as model.rs' projected head).
        self.w_first = self.hidden_w[:h]
        self.w_last = self.hidden_w[h : 2 * h]
        self.w_width = self.width_embedding @ self.hidden_w[2 * h : 2 * h + wd]
        self.w_shape = self.hidden_w[2 * h + wd :]
        assert self.w_shape.shape[0] == SPAN_SHAPE_FEATURES, self.w_shape.shape

        self.tokenizer = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        probe = self.tokenizer.encode(["a"], is_pretokenized=True, add_special_tokens=True)
        wids = probe.word_ids
        first = next(i for i, w in enumerate(wids) if w is not None)
        last = max(i for i, w in enumerate(wids) if w is not None) + 1
        self.prefix = probe.ids[:first]
        self.suffix = probe.ids[last:]
        self.unk_id = next(
            i
            for i in (self.tokenizer.token_to_id(t) for t in ("[UNK]", "<unk>", "<UNK>", "[unk]"))
            if i is not None
        )
        self.budget = max(self.max_tokens - len(self.prefix) - len(self.suffix), 1)

    # -- preparation (host)

    def word_pieces(self, words):
        if not words:
            return []
        enc = self.tokenizer.encode(words, is_pretokenized=True, add_special_tokens=False)
        pieces = [[] for _ in words]
        for i, w in zip(enc.ids, enc.word_ids):
            if w is not None and w < len(pieces):
                pieces[w].append(i)
        for p in pieces:
            if not p:
                p.append(self.unk_id)
        return pieces

    def prepare(self, text):
        """A sentence from raw text: its words and the windows with their spans."""
        ranges = split_words(text)
        words = [text_slice for text_slice in (text[s:e] for s, e in ranges)]
        # `text[s:e]` is a char slice in Python: the offsets are char offsets, as in linkner.
        pieces = self.word_pieces(words)
        shapes = [word_shape(w, i == 0) for i, w in enumerate(words)]
        counts = [len(p) for p in pieces]
        n = len(words)
        if sum(min(max(c, 1), self.budget) for c in counts) <= self.budget:
            plan = [(0, n, 0, n)] if n else []
        else:
            plan = plan_windows(counts, self.budget, self.max_span_width, self.window_context)
        windows = []
        for ws, we, cs, ce in plan:
            ids = list(self.prefix)
            first, last = [], []
            for p in pieces[ws:we]:
                take = min(max(len(p), 1), self.budget)
                first.append(len(ids))
                ids.extend(p[:take])
                last.append(len(ids) - 1)
            ids.extend(self.suffix)
            spans, pos, shp = [], [], []
            for s in range(cs, ce):
                for e in range(s + 1, min(s + self.max_span_width, we) + 1):
                    spans.append((s, e))
                    pos.append((first[s - ws], last[e - 1 - ws]))
                    shp.append(span_shape(shapes, s, e))
            windows.append((ids, spans, pos, shp))
        return {"text": text, "ranges": ranges, "words": words, "windows": windows}

    # -- forward

    def tag(self, texts):
        """Entities of each raw text: lists of dicts (char offsets), as linkner's local output."""
        torch = self.torch
        docs = [self.prepare(t) for t in texts]
        items = [(d, w) for d, doc in enumerate(docs) for w in doc["windows"]]
        scored = [[] for _ in docs]
        if items:
            t = max(len(w[0]) for _, w in items)
            b = len(items)
            ids = torch.full((b, t), self.pad_id, dtype=torch.long)
            mask = torch.zeros((b, t), dtype=torch.long)
            start, end, width, shape, owner = [], [], [], [], []
            for bi, (d, (wid, spans, pos, shp)) in enumerate(items):
                ids[bi, : len(wid)] = torch.tensor(wid, dtype=torch.long)
                mask[bi, : len(wid)] = 1
                for (s, e), (f, l), sh in zip(spans, pos, shp):
                    start.append(bi * t + f)
                    end.append(bi * t + l)
                    width.append(e - s - 1)
                    shape.append(sh)
                    owner.append((d, s, e))
            with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=self.bf16):
                hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state.float()
                flat = hidden.reshape(b * t, -1)
                if owner:
                    x = (
                        (flat @ self.w_first)[torch.tensor(start)]
                        + (flat @ self.w_last)[torch.tensor(end)]
                        + self.w_width[torch.tensor(width)]
                        + torch.tensor(shape, dtype=torch.float32) @ self.w_shape
                        + self.hidden_b
                    )
                    x = torch.nn.functional.gelu(x) @ self.cls_w + self.cls_b
                    probs = torch.softmax(x, dim=1)
                    best = probs.argmax(dim=1)
                    keep = (best != 0).nonzero().flatten().tolist()
                    probs_l = probs[keep].tolist() if keep else []
                    best_l = best[keep].tolist() if keep else []
                    for k, p, c in zip(keep, probs_l, best_l):
                        d, s, e = owner[k]
                        scored[d].append((c, p[c], s, e, p))
        return [self._decode(doc, spans) for doc, spans in zip(docs, scored)]

    def _decode(self, doc, spans):
        spans.sort(key=lambda x: (-x[1], x[2]))
        chosen = []
        for c in spans:
            if not any(o[2] < c[3] and c[2] < o[3] for o in chosen):
                chosen.append(c)
        chosen.sort(key=lambda x: (x[2], x[3]))
        ranges, text = doc["ranges"], doc["text"]
        ents = []
        for cls, p, s, e, probs in chosen:
            cs, ce = ranges[s][0], ranges[e - 1][1]
            label = self.labels[cls]
            ents.append(
                {
                    "entity": {
                        "start": cs,
                        "end": ce,
                        "text": text[cs:ce],
                        "label": label,
                        "score": p,
                    },
                    "span": {"start": s, "end": e, "label": label},
                    "local_label": label,
                    "local_prob": p,
                    "uncertainty": 1.0 - p,
                    "provenance": {"source": "local"},
                    "local_probs": probs,
                }
            )
        tokens = [{"text": w, "start": s, "end": e} for w, (s, e) in zip(doc["words"], ranges)]
        return {"sentence": {"text": text, "tokens": tokens}, "entities": ents}


# ----------------------------------------------------------------------------- the server


class Batcher:
    """One inference thread; each pass takes every waiting request, up to `max_batch` texts."""

    def __init__(self, tagger, max_batch):
        self.tagger = tagger
        self.max_batch = max(1, max_batch)
        self.q = queue.Queue()
        threading.Thread(target=self._run, daemon=True, name="inference").start()

    def submit(self, loop, texts):
        fut = loop.create_future()
        self.q.put((loop, fut, texts))
        return fut

    def _run(self):
        while True:
            jobs = [self.q.get()]
            n = len(jobs[0][2])
            while n < self.max_batch:
                try:
                    job = self.q.get_nowait()
                except queue.Empty:
                    break
                jobs.append(job)
                n += len(job[2])
            texts = [t for _, _, ts in jobs for t in ts]
            try:
                out = self.tagger.tag(texts)
                err = None
            except Exception as e:  # noqa: BLE001 - answered as a 500
                out, err = None, e
            k = 0
            for loop, fut, ts in jobs:
                if err is None:
                    res = out[k : k + len(ts)]
                    k += len(ts)
                    loop.call_soon_threadsafe(_resolve, fut, res, None)
                else:
                    loop.call_soon_threadsafe(_resolve, fut, None, err)


def _resolve(fut, res, err):
    if fut.done():
        return
    if err is not None:
        fut.set_exception(err)
    else:
        fut.set_result(res)


def make_app(tagger, max_batch):
    import asyncio

    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    app = FastAPI(title="linkner peer (PyTorch + transformers)")
    batcher = Batcher(tagger, max_batch)

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.post("/v1/annotate")
    async def annotate(request: Request):
        try:
            body = await request.json()
        except Exception:  # noqa: BLE001
            return JSONResponse({"error": {"code": "invalid_json"}}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"error": {"code": "invalid_json"}}, status_code=400)
        ids = None
        if isinstance(body.get("text"), str):
            texts = [body["text"]]
        elif isinstance(body.get("texts"), list):
            texts = [str(t) for t in body["texts"]]
        elif isinstance(body.get("documents"), list):
            texts = [str(d.get("text", "")) for d in body["documents"]]
            ids = [d.get("id") for d in body["documents"]]
        else:
            return JSONResponse(
                {"error": {"code": "invalid_request", "message": "give text, texts or documents"}},
                status_code=422,
            )
        annotations = await batcher.submit(asyncio.get_running_loop(), texts)
        if ids is not None:
            for a, i in zip(annotations, ids):
                a["id"] = i
        return JSONResponse({"annotations": annotations})

    return app


# ----------------------------------------------------------------------------- agreement check


def read_conll_words(path, limit):
    sents, words = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                if words:
                    sents.append(words)
                    words = []
                    if limit and len(sents) >= limit:
                        break
                continue
            # Split on the last ASCII space only (one dev token is a lone U+00A0).
            words.append(line.rsplit(" ", 1)[0])
    if words and not (limit and len(sents) >= limit):
        sents.append(words)
    return sents


def check(args):
    tagger = PeerTagger(args.model, args.threads, args.bf16)
    sents = read_conll_words(args.data, args.check_n)
    texts = [" ".join(w) for w in sents]
    t0 = time.perf_counter()
    ours = []
    for i in range(0, len(texts), 32):
        ours.extend(tagger.tag(texts[i : i + 32]))
    peer_s = time.perf_counter() - t0
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        f.write("\n".join(texts) + "\n")
        path = f.name
    cmd = [
        args.linkner, "predict", "--model", args.model, "--input", path,
        "--input-format", "text", "--threads", str(args.threads),
    ]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    rust_s = time.perf_counter() - t0
    os.unlink(path)
    if res.returncode != 0:
        print(res.stderr, file=sys.stderr)
        return 1
    theirs = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
    if len(theirs) != len(texts):
        print(f"linkner gave {len(theirs)} records for {len(texts)} texts", file=sys.stderr)
        return 1
    same_words = 0
    n_ours = n_theirs = n_same = 0
    max_dp = 0.0
    diffs = []
    for i, (a, b) in enumerate(zip(ours, theirs)):
        wa = [(t["start"], t["end"]) for t in a["sentence"]["tokens"]]
        wb = [(t["start"], t["end"]) for t in b["tokens"]]
        same_words += wa == wb
        ea = {(e["entity"]["start"], e["entity"]["end"], e["entity"]["label"]): e["entity"]["score"]
              for e in a["entities"]}
        eb = {(e["start"], e["end"], e["label"]): e.get("score") for e in b["entities"]}
        n_ours += len(ea)
        n_theirs += len(eb)
        common = set(ea) & set(eb)
        n_same += len(common)
        for k in common:
            if eb[k] is not None:
                max_dp = max(max_dp, abs(ea[k] - eb[k]))
        if set(ea) != set(eb) or wa != wb:
            diffs.append({
                "tweet": i,
                "text": texts[i],
                "words_differ": wa != wb,
                "peer_only": [[*k, texts[i][k[0]:k[1]], round(ea[k], 4)] for k in sorted(set(ea) - set(eb))],
                "linkner_only": [[*k, texts[i][k[0]:k[1]], eb[k]] for k in sorted(set(eb) - set(ea))],
            })
    union = n_ours + n_theirs - n_same
    report = {
        "tweets": len(texts),
        "same_words": same_words,
        "entities_peer": n_ours,
        "entities_linkner": n_theirs,
        "identical_entities": n_same,
        "agreement": n_same / union if union else 1.0,
        "tweets_with_identical_entities": len(texts) - sum(1 for d in diffs if d["peer_only"] or d["linkner_only"]),
        "max_abs_score_diff_identical": max_dp,
        "peer_seconds": peer_s,
        "linkner_predict_seconds": rust_s,
        "differences": diffs[: args.check_show],
    }
    print(json.dumps(report, ensure_ascii=False, indent=1))
    return 0 if report["agreement"] >= 0.99 else 3


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="linkner tagger folder")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8100)
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--bf16", action="store_true",
                    help="encoder under torch.autocast(cpu, bfloat16); the span head stays f32")
    ap.add_argument("--max-batch", type=int, default=32,
                    help="most texts per forward pass (dynamic batching; 1: one request each)")
    ap.add_argument("--check", action="store_true",
                    help="compare with `linkner predict` on TwitterNER test tweets and exit")
    ap.add_argument("--linkner", default="target/debug/linkner")
    ap.add_argument("--data", default=os.path.join(
        os.environ.get("LINKNER_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")),
        "twitterner", "test.txt"))
    ap.add_argument("--check-n", type=int, default=300)
    ap.add_argument("--check-show", type=int, default=20)
    args = ap.parse_args()
    if args.check:
        return check(args)
    import uvicorn

    tagger = PeerTagger(args.model, args.threads, args.bf16)
    tagger.tag(["warm up the peer"])
    app = make_app(tagger, args.max_batch)
    uvicorn.run(app, host=args.host, port=args.port, workers=1, log_level="warning",
                access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
