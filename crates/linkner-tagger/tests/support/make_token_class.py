"""Hugging Face token-classification checkpoints and `transformers`' outputs on them, for the
parity tests of linkner's `TokenClassTagger`.

Usage:
  python make_token_class.py refs OUT_DIR MINILM_DIR CONLL_FILE
  python make_token_class.py finetune OUT_DIR MINILM_DIR

`refs` writes, under OUT_DIR (nothing is downloaded; random weights, seeded):
  bert/     a tiny random BertForTokenClassification (2 layers, hidden 32) with the MiniLM
            WordPiece tokenizer; id2label is CoNLL-03's IOB2 labels (9)
  roberta/  a tiny random RobertaForTokenClassification with a byte-level BPE tokenizer trained
            here on the sentences; id2label is IOB2 with types in no built-in schema, `O` not at
            id 0 (labels in shuffled order)
  iobes/    the tiny BERT again with an IOBES label set (17 labels) and another head
  refs.json per model, per sentence (CoNLL_FILE's sentences, then Unicode sentences):
            "words", "ids" (the fast tokenizer's, is_split_into_words=True), "logits" of every
            token (model output), "margin" (smallest top-1 minus top-2 logit over the words'
            first sub-tokens), "tags" (argmax label of each word's first sub-token),
            "first" (entities of transformers' "first" aggregation with words = the given words:
            the pipeline's own aggregate/group code fed pre-entities whose `is_subword` comes from
            word_ids), "pipeline" (the public pipeline(..., is_split_into_words=True,
            aggregation_strategy="first") output) and "same_words" (whether the pipeline's own
            word split equals the given words, so that both must agree), "seqeval" (entities of
            seqeval's get_entities on "tags"; the only reference for iobes/, whose labels the
            pipeline does not read as IOBES). Entities are [first_word, end_word, type].

`finetune` fine-tunes all-MiniLM-L6-v2 as a BertForTokenClassification (CoNLL-03 IOB2 labels)
on a few sentences until it has memorised them (seeded, ~10-30 s on one CPU thread) and saves it
to OUT_DIR: a small real checkpoint that finds real entities, for the examples and end-to-end
tests.
"""
import json
import os
import random
import shutil
import sys
import warnings

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (AutoTokenizer, BertConfig, BertForTokenClassification,
                          RobertaConfig, RobertaForTokenClassification, RobertaTokenizerFast,
                          pipeline)
from transformers.pipelines.token_classification import AggregationStrategy

warnings.filterwarnings("ignore")
torch.set_num_threads(1)

CONLL = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]

E_ACUTE = "e\u0301"
UNICODE = [
    ["Zoë", "Müller", "flew", "from", "São", "Paulo", "to", "東京", "."],
    ["She", "studied", "at", "北京大学", "in", "北京", "with", "Ångström", "."],
    ["Great", "win", "for", "Real", "Madrid", "🎉", "👍🏽", "!"],
    ["caf" + E_ACUTE, "Rene" + E_ACUTE, "Dvořák", "met", "Nguyễn", "in", "Łódź", "."],
    ["Þórshöfn", "Ωμέγα", "Москва", "and", "서울", "beat", "Reykjavík", "2-1", "."],
    ["François", "Gödel", "visited", "Zürich", "and", "Kraków", "on", "1996-08-22", "."],
]

# Sentences the `finetune` model memorises (CoNLL-03 style, IOB2).
FINETUNE = [
    ("EU rejects German call to boycott British lamb .",
     "B-ORG O B-MISC O O O B-MISC O O"),
    ("Peter Blackburn met Angela Merkel in Brussels .",
     "B-PER I-PER O B-PER I-PER O B-LOC O"),
    ("Japan beat Syria in the Asian Cup final in Tokyo .",
     "B-LOC O B-LOC O O B-MISC I-MISC O O B-LOC O"),
    ("Siemens AG opened a plant in Munich , Reuters reported .",
     "B-ORG I-ORG O O O O B-LOC O B-ORG O O"),
    ("Manchester United signed Jürgen Klopp from Liverpool .",
     "B-ORG I-ORG O B-PER I-PER O B-ORG O"),
    ("The United Nations met in Geneva on Monday .",
     "O B-ORG I-ORG O O B-LOC O O O"),
    ("Emmanuel Macron visited Paris and Berlin .",
     "B-PER I-PER O B-LOC O B-LOC O"),
    ("Toyota and Sony shares rose in London .",
     "B-ORG O B-ORG O O O B-LOC O"),
]


def read_conll(path):
    sents, words = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                if words:
                    sents.append(words)
                    words = []
                continue
            cols = line.split()
            if cols[0] == "-DOCSTART-":
                continue
            words.append(cols[0])
    if words:
        sents.append(words)
    return sents


def perturb(model, head_scale):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
        model.classifier.weight.mul_(head_scale)
        model.classifier.bias.mul_(head_scale)
    model.eval()
    return model


def word_span(pos, chars_map, is_end):
    """The index of the word holding char `pos` (the char before `pos` when `is_end`)."""
    p = pos - 1 if is_end else pos
    best = 0
    for w, (ws, we) in enumerate(chars_map):
        if ws <= p:
            best = w
    return best


def to_spans(entities, chars_map):
    out = []
    for e in entities:
        start = word_span(int(e["start"]), chars_map, False)
        end = word_span(int(e["end"]), chars_map, True) + 1
        out.append([start, end, e["entity_group"]])
    return out


def chars_map_of(words):
    m, c = [], 0
    for w in words:
        m.append((c, c + len(w)))
        c += len(w) + 1
    return m


def seqeval_spans(tags):
    from seqeval.metrics.sequence_labeling import get_entities
    return [[s, e + 1, t] for t, s, e in get_entities(list(tags))]


def references(model, tok, sentences, with_pipeline=True):
    pipe = pipeline("token-classification", model=model, tokenizer=tok, device=-1)
    id2label = model.config.id2label
    out = []
    batch = 64
    for b0 in range(0, len(sentences), batch):
        chunk = sentences[b0:b0 + batch]
        enc = tok(chunk, is_split_into_words=True, padding=True, return_tensors="pt")
        with torch.no_grad():
            logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        for i, words in enumerate(chunk):
            n = int(enc["attention_mask"][i].sum())
            ids = enc["input_ids"][i][:n].tolist()
            lg = logits[i][:n]
            wids = enc.word_ids(i)[:n]
            first = {}
            for k, w in enumerate(wids):
                if w is not None and w not in first:
                    first[w] = k
            assert sorted(first) == list(range(len(words))), (words, wids)
            margin = float("inf")
            tags = []
            for w in range(len(words)):
                row = lg[first[w]]
                top = torch.topk(row, 2).values
                margin = min(margin, float(top[0] - top[1]))
                tags.append(id2label[int(row.argmax())])
            out.append({
                "words": words,
                "ids": ids,
                "logits": lg.tolist(),
                "margin": margin,
                "tags": tags,
            })
    for rec in out:
        rec["seqeval"] = seqeval_spans(rec["tags"])
    if not with_pipeline:
        return out
    # The public pipeline call (its own word split), all sentences at once.
    public_all = pipe([rec["words"] for rec in out], is_split_into_words=True,
                      aggregation_strategy="first")
    assert len(public_all) == len(out)
    # transformers' own "first" aggregation with the given words (word_ids).
    for rec, public in zip(out, public_all):
        words = rec["words"]
        cmap = chars_map_of(words)
        sentence = " ".join(words)
        inputs = next(pipe.preprocess(words, is_split_into_words=True, delimiter=" "))
        word_ids = inputs["word_ids"]
        with torch.no_grad():
            outputs = pipe._forward(dict(inputs))
        scores = torch.softmax(outputs["logits"][0].float(), -1).detach().numpy()
        pre = pipe.gather_pre_entities(
            sentence, outputs["input_ids"][0], scores, outputs["offset_mapping"][0],
            outputs["special_tokens_mask"][0].numpy(), AggregationStrategy.FIRST,
            word_ids=word_ids, word_to_chars_map=cmap)
        same = True
        for p in pre:
            idx = p["index"]
            sub = idx > 0 and word_ids[idx - 1] is not None and word_ids[idx - 1] == word_ids[idx]
            if bool(p["is_subword"]) != sub:
                same = False
            p["is_subword"] = sub
        grouped = pipe.aggregate(pre, AggregationStrategy.FIRST)
        grouped = [g for g in grouped if g.get("entity_group") != "O"]
        rec["first"] = to_spans(grouped, cmap)
        rec["same_words"] = same
        rec["pipeline"] = to_spans(public, cmap)
    return out


def make_refs(out, minilm, conll):
    random.seed(1234)
    torch.manual_seed(1234)
    sentences = read_conll(conll) + UNICODE
    os.makedirs(out, exist_ok=True)
    refs = {}

    # --- BERT, CoNLL IOB2 labels, MiniLM's WordPiece tokenizer ---------------------------------
    bert_tok = AutoTokenizer.from_pretrained(minilm)
    cfg = BertConfig(vocab_size=bert_tok.vocab_size, hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=4, intermediate_size=64, max_position_embeddings=512,
                     layer_norm_eps=1e-12, hidden_act="gelu", pad_token_id=0,
                     id2label=dict(enumerate(CONLL)), label2id={l: i for i, l in enumerate(CONLL)},
                     classifier_dropout=0.25)
    bert = perturb(BertForTokenClassification(cfg), 8.0)
    bert.save_pretrained(os.path.join(out, "bert"), safe_serialization=True)
    bert_tok.save_pretrained(os.path.join(out, "bert"))
    refs["bert"] = references(bert, bert_tok, sentences)

    # --- BERT with IOBES labels ------------------------------------------------------------------
    iobes = ["O"] + [f"{p}-{t}" for t in ["PER", "ORG", "LOC", "MISC"] for p in "BIES"]
    cfg_iobes = BertConfig(**{**cfg.to_dict(), "id2label": dict(enumerate(iobes)),
                              "label2id": {l: i for i, l in enumerate(iobes)}})
    model = perturb(BertForTokenClassification(cfg_iobes), 8.0)
    model.save_pretrained(os.path.join(out, "iobes"), safe_serialization=True)
    bert_tok.save_pretrained(os.path.join(out, "iobes"))
    # transformers' pipeline reads `E-`/`S-` as types of their own: seqeval is the reference.
    refs["iobes"] = references(model, bert_tok, sentences, with_pipeline=False)

    # --- RoBERTa, custom types, `O` not at id 0, byte-level BPE -----------------------------------
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1000, min_frequency=2,
                                  special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator([" ".join(s) for s in sentences], trainer=trainer)
    tok.post_processor = processors.RobertaProcessing(sep=("</s>", 2), cls=("<s>", 0),
                                                      trim_offsets=True, add_prefix_space=False)
    rdir = os.path.join(out, "roberta")
    os.makedirs(rdir, exist_ok=True)
    tok.save(os.path.join(rdir, "tokenizer_raw.json"))
    rtok = RobertaTokenizerFast(tokenizer_file=os.path.join(rdir, "tokenizer_raw.json"),
                                add_prefix_space=True)
    os.remove(os.path.join(rdir, "tokenizer_raw.json"))
    labels = ["B-human", "I-human", "O", "B-geo-loc", "I-geo-loc", "B-work_of_fiction",
              "I-work_of_fiction"]
    rcfg = RobertaConfig(vocab_size=tok.get_vocab_size(), hidden_size=24, num_hidden_layers=2,
                         num_attention_heads=3, intermediate_size=48, max_position_embeddings=514,
                         type_vocab_size=1, layer_norm_eps=1e-5, hidden_act="gelu",
                         pad_token_id=1, bos_token_id=0, eos_token_id=2,
                         id2label=dict(enumerate(labels)),
                         label2id={l: i for i, l in enumerate(labels)})
    rob = perturb(RobertaForTokenClassification(rcfg), 8.0)
    rob.save_pretrained(rdir, safe_serialization=True)
    rtok.save_pretrained(rdir)
    refs["roberta"] = references(rob, rtok, sentences)

    with open(os.path.join(out, "refs.json"), "w", encoding="utf-8") as f:
        json.dump(refs, f, ensure_ascii=False)


def finetune(out, minilm):
    random.seed(7)
    torch.manual_seed(7)
    tok = AutoTokenizer.from_pretrained(minilm)
    model = BertForTokenClassification.from_pretrained(
        minilm, num_labels=len(CONLL), id2label=dict(enumerate(CONLL)),
        label2id={l: i for i, l in enumerate(CONLL)})
    words = [s.split() for s, _ in FINETUNE]
    tags = [t.split() for _, t in FINETUNE]
    enc = tok(words, is_split_into_words=True, padding=True, return_tensors="pt")
    labels = torch.full(enc["input_ids"].shape, -100)
    for i in range(len(words)):
        seen = set()
        for k, w in enumerate(enc.word_ids(i)):
            if w is not None and w not in seen:
                seen.add(w)
                labels[i, k] = CONLL.index(tags[i][w])
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4)
    model.train()
    for step in range(60):
        loss = model(**enc, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        pred = model(**enc).logits.argmax(-1)
    wrong = int(((pred != labels) & (labels != -100)).sum())
    print(f"final loss {float(loss):.4f}, {wrong} wrong word tags", file=sys.stderr)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)


if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "refs":
        make_refs(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) >= 4 and sys.argv[1] == "finetune":
        finetune(sys.argv[2], sys.argv[3])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
