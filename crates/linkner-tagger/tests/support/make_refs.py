"""Reference outputs of Hugging Face `transformers` for the encoder parity tests.

Usage: python make_refs.py OUT_DIR [MINILM_DIR]

Writes, under OUT_DIR:
  bert/     a tiny random BertModel (save_pretrained, keys without prefix, pooler included)
  roberta/  a tiny random RobertaForMaskedLM (keys prefixed `roberta.`, plus `lm_head.*`)
  broken/   the tiny BERT with one encoder tensor removed from model.safetensors
  refs.json inputs and last hidden states of each model (and MiniLM when given)
All weights are perturbed with noise so LayerNorm weights/biases are not 1/0.
"""
import json
import os
import shutil
import sys

import torch
from safetensors.torch import load_file, save_file
from transformers import (AutoModel, AutoTokenizer, BertConfig, BertModel,
                          RobertaConfig, RobertaForMaskedLM)

out = sys.argv[1]
minilm = sys.argv[2] if len(sys.argv) > 2 else None
torch.manual_seed(1234)
torch.set_num_threads(1)


def perturb(model):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    model.eval()
    return model


def batch(lengths, vocab, pad, low):
    t = max(lengths)
    ids, mask = [], []
    for n in lengths:
        row = torch.randint(low, vocab, (n,)).tolist()
        ids.append(row + [pad] * (t - n))
        mask.append([1] * n + [0] * (t - n))
    return ids, mask


def run(model, ids, mask):
    with torch.no_grad():
        h = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).last_hidden_state
    return h.tolist()


refs = {}

bert_cfg = BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, max_position_embeddings=40, type_vocab_size=2,
                      layer_norm_eps=1e-7, hidden_act="gelu", pad_token_id=0)
bert = perturb(BertModel(bert_cfg))
bert.save_pretrained(os.path.join(out, "bert"), safe_serialization=True)
ids, mask = batch([7, 3, 11], 120, 0, 1)
refs["bert"] = {"ids": ids, "mask": mask, "hidden": run(bert, ids, mask)}

rob_cfg = RobertaConfig(vocab_size=110, hidden_size=24, num_hidden_layers=2, num_attention_heads=3,
                        intermediate_size=48, max_position_embeddings=34, type_vocab_size=1,
                        layer_norm_eps=1e-5, hidden_act="gelu", pad_token_id=1)
rob = perturb(RobertaForMaskedLM(rob_cfg))
rob.save_pretrained(os.path.join(out, "roberta"), safe_serialization=True)
ids, mask = batch([5, 9, 2], 110, 1, 3)
with torch.no_grad():
    h = rob.roberta(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).last_hidden_state
refs["roberta"] = {"ids": ids, "mask": mask, "hidden": h.tolist()}

broken = os.path.join(out, "broken")
shutil.copytree(os.path.join(out, "bert"), broken)
st = load_file(os.path.join(broken, "model.safetensors"))
del st["encoder.layer.1.output.LayerNorm.weight"]
save_file(st, os.path.join(broken, "model.safetensors"), metadata={"format": "pt"})

if minilm:
    tok = AutoTokenizer.from_pretrained(minilm)
    model = AutoModel.from_pretrained(minilm).eval()
    sentences = [
        ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."],
        ["Peter", "Blackburn"],
        ["São", "Paulo", "'s", "mayor", "met", "Müller", "in", "東京", "on", "Monday", "."],
    ]
    enc = tok(sentences, is_split_into_words=True, padding=True, return_tensors="pt")
    with torch.no_grad():
        h = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
    refs["minilm"] = {
        "words": sentences,
        "ids": enc["input_ids"].tolist(),
        "mask": enc["attention_mask"].tolist(),
        "hidden": h.tolist(),
    }

with open(os.path.join(out, "refs.json"), "w") as f:
    json.dump(refs, f)
