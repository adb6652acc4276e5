"""A small RoBERTa-style byte-level BPE tokenizer and Hugging Face's encodings of test sentences.

Usage: python make_roberta_tokenizer.py OUT_DIR

Writes, under OUT_DIR:
  tokenizer.json         byte-level BPE (vocab 800) trained in memory on generated sentences;
                         ByteLevel pre-tokenizer with add_prefix_space=false (as roberta-base's
                         file), ByteLevel decoder, RobertaProcessing with <s> ... </s>
  tokenizer_prefix.json  the same with add_prefix_space=true in the pre-tokenizer
  expected.json          {"sentences": [{"words", "input_ids", "word_ids"}]} as encoded by
                         transformers.RobertaTokenizerFast(tokenizer_file=tokenizer.json,
                         add_prefix_space=True) with is_split_into_words=True and special
                         tokens; "word_ids" are the ids of each word (grouped by word_ids())
Nothing is downloaded; the tokenizer is only loaded from the local file.
"""
import json
import os
import random
import sys

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import RobertaTokenizerFast

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = random.Random(20261125)

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]

# --- training corpus: a few hundred varied sentences --------------------------------------------
names = ["Peter", "Blackburn", "Zoë", "Müller", "José", "São", "Paulo", "Ångström", "François",
         "Dvořák", "Łódź", "Nguyễn", "Björk", "Renée", "Gödel", "Straße", "Ashkenazi", "Obama",
         "Merkel", "Smith", "Johnson", "O'Neill", "McDonald", "Kowalski", "Đorđević"]
places = ["London", "Paris", "Berlin", "東京", "北京", "大学", "上海", "Moscow", "Zürich",
          "Kraków", "Reykjavík", "Brasília", "Montréal", "México", "ソウル", "서울", "Αθήνα",
          "Москва", "القاهرة", "New", "York", "Los", "Angeles", "Rio", "de", "Janeiro"]
orgs = ["EU", "UN", "NATO", "FIFA", "Reuters", "Siemens", "Toyota", "Sony", "BBC", "IBM",
        "Manchester", "United", "Real", "Madrid", "Ajax", "Bayern"]
verbs = ["rejects", "met", "visited", "said", "won", "lost", "signed", "announced", "reported",
         "beat", "joined", "left", "called", "boycott", "praised", "criticised", "opened"]
nouns = ["call", "lamb", "mayor", "match", "deal", "report", "government", "minister", "team",
         "market", "shares", "profit", "season", "election", "treaty", "café", "naïve", "résumé",
         "coöperation", "façade", "piñata", "jalapeño", "smörgåsbord", "crème", "brûlée"]
hyph = ["well-known", "long-term", "state-of-the-art", "co-operation", "first-half",
        "Anglo-French", "pre-season", "half-time", "mid-week", "German-born"]
fillers = ["the", "a", "an", "to", "in", "on", "of", "for", "and", "with", "by", "at", "from",
           "after", "before", "is", "was", "were", "has", "had", "will", "not", "'s", "n't"]
emoji = ["🎉", "👍", "👍🏽", "😀", "🇫🇷", "❤️", "⚽", "🚀"]
punct = [".", ",", ";", ":", "!", "?", "--", "(", ")", "\"", "'", "...", "/", "%", "$"]


def number():
    kind = rng.randrange(5)
    if kind == 0:
        return f"{rng.randrange(0, 6)}-{rng.randrange(0, 6)}"
    if kind == 1:
        return f"{rng.randrange(1950, 2030)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
    if kind == 2:
        return f"{rng.randrange(1, 1000)}.{rng.randrange(0, 100):02d}"
    if kind == 3:
        return f"{rng.randrange(1000, 99999):,}"
    return str(rng.randrange(0, 100))


def sentence():
    pools = [names, places, orgs, verbs, nouns, hyph, fillers, fillers, fillers]
    words = [rng.choice(rng.choice([names, places, orgs]))]
    for _ in range(rng.randrange(3, 14)):
        r = rng.random()
        if r < 0.08:
            words.append(number())
        elif r < 0.13:
            words.append(rng.choice(emoji))
        elif r < 0.22:
            words.append(rng.choice(punct))
        else:
            words.append(rng.choice(rng.choice(pools)))
    words.append(rng.choice([".", "!", "?", "."]))
    return " ".join(words)


corpus = [sentence() for _ in range(400)]
corpus += ["東京 と 北京大学 の 学生 が 会った 。", "北京大学 位于 北京 。", "日本語 の テキスト です 。"] * 5

# --- the tokenizer --------------------------------------------------------------------------------
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True)
tok.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(
    vocab_size=800,
    min_frequency=2,
    special_tokens=SPECIALS,
    initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    show_progress=False,
)
tok.train_from_iterator(corpus, trainer=trainer)
# As roberta-base: <mask> swallows the space before it.
tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True)])
ids = [tok.token_to_id(t) for t in SPECIALS]
assert ids == [0, 1, 2, 3, 4], ids
tok.post_processor = processors.RobertaProcessing(
    sep=("</s>", 2), cls=("<s>", 0), trim_offsets=True, add_prefix_space=False
)
vocab = tok.get_vocab_size()
assert 500 <= vocab <= 1000, vocab
path = os.path.join(out, "tokenizer.json")
tok.save(path)
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, trim_offsets=True)
tok.post_processor = processors.RobertaProcessing(
    sep=("</s>", 2), cls=("<s>", 0), trim_offsets=True, add_prefix_space=True
)
tok.save(os.path.join(out, "tokenizer_prefix.json"))

# --- Hugging Face's encodings ---------------------------------------------------------------------
hf = RobertaTokenizerFast(tokenizer_file=path, add_prefix_space=True)
assert hf.bos_token_id == 0 and hf.eos_token_id == 2, (hf.bos_token_id, hf.eos_token_id)

E_ACUTE = "e\u0301"  # e + combining acute accent
ZWJ = "\u200d"
ZWSP = "\u200b"
test_sentences = [
    ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."],
    ["Zoë", "Müller", "flew", "from", "São", "Paulo", "to", "東京", "."],
    ["She", "studied", "at", "北京大学", "in", "北京", "."],
    ["Great", "win", "🎉", "👍🏽", "👍", "!"],
    ["caf" + E_ACUTE, "Rene" + E_ACUTE, E_ACUTE, "\u0301", "."],
    [".", "--", "'s", ",", "...", "(", ")", "\""],
    ["Ajax", "won", "2-1", "on", "1996-08-22", "at", "3:45", "with", "1,234", "fans", "."],
    ["family", "👨" + ZWJ + "👩" + ZWJ + "👧", "and", "zero" + ZWSP + "width", "joi" + ZWJ + "ner"],
    ["Qwzxj", "Xylophonicity", "Þórshöfn", "Ωμέγα", "สวัสดี", "Ĳssel"],
    ["Peter"],
    ["."],
    ["Blackburn", "'s", "n't", "O'Neill", "well-known", "state-of-the-art", "Anglo-French"],
    ["EU", "EU", "eu", "Eu", "London", "london", "LONDON"],
    ["a", "b", "c", "1", "2", "3", "%", "$", "€", "£"],
    # Words that are special tokens' text (HF matches them before pre-tokenizing, so no prefix
    # space) and words with ASCII spaces (HF adds a prefix space only when none is there).
    ["a", "<s>", "b", "<unk>", "c", "<mask>", "</s>", "<pad>", "."],
    ["x", " ", " y", "z ", "New York", "\u00a0"],
]
cases = []
for words in test_sentences:
    enc = hf(words, is_split_into_words=True, add_special_tokens=True)
    input_ids = enc["input_ids"]
    word_ids = enc.word_ids()
    per_word = [[] for _ in words]
    for i, w in zip(input_ids, word_ids):
        if w is not None:
            per_word[w].append(i)
    # The test's contract: every sub-token belongs to a word except <s> first and </s> last.
    assert word_ids[0] is None and word_ids[-1] is None, (words, word_ids)
    assert all(w is not None for w in word_ids[1:-1]), (words, word_ids)
    assert all(per_word), (words, per_word)
    cases.append({"words": words, "input_ids": input_ids, "word_ids": per_word})

with open(os.path.join(out, "expected.json"), "w", encoding="utf-8") as f:
    json.dump({"vocab_size": vocab, "sentences": cases}, f, ensure_ascii=False, indent=1)
