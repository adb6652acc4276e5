"""The owner libraries' side of the format tests (crates/linkner-core/tests/formats_owner_libs.rs).

    owner_libs.py read FORMAT PATH            what the owner library reads from a file linkner wrote
    owner_libs.py write FORMAT SAMPLE OUT     the owner library writes SAMPLE; prints what it wrote
    owner_libs.py validate-ls PATH LABEL...   Label Studio SDK's validation of every task

Printed: a JSON list, one item per text: {"text": ..., "entities": [[start, end, label, surface]]}
with start/end Python str (code point) offsets into "text". For the token formats (hf) "text"
is the words joined by one space.
"""

import json
import os
import sys


def chars_of_utf16(text, offset):
    """The code point offset of a UTF-16 offset (as Label Studio's editor counts)."""
    units = 0
    for i, c in enumerate(text):
        if units == offset:
            return i
        units += 2 if ord(c) > 0xFFFF else 1
    if units == offset:
        return len(text)
    raise ValueError(f"UTF-16 offset {offset} is not a char boundary of {text!r}")


def utf16_of_chars(text, offset):
    return len(text[:offset].encode("utf-16-le")) // 2


def words_entities(tokens, tags):
    from seqeval.metrics.sequence_labeling import get_entities

    text = " ".join(tokens)
    starts, pos = [], 0
    for t in tokens:
        starts.append(pos)
        pos += len(t) + 1
    out = []
    for label, s, e in get_entities(list(tags)):
        a, b = starts[s], starts[e] + len(tokens[e])
        out.append([a, b, label, text[a:b]])
    return {"text": text, "entities": out}


NER_CONFIG = (
    '<View><Labels name="label" toName="text">{labels}</Labels>'
    '<Text name="text" value="$text"/></View>'
)


def read(fmt, path):
    out = []
    if fmt == "hf":
        import datasets

        ds = datasets.load_dataset("json", data_files=path, split="train")
        for row in ds:
            out.append(words_entities(row["tokens"], row["ner_tags"]))
    elif fmt == "spacy-docbin":
        import spacy
        from spacy.tokens import DocBin

        nlp = spacy.blank("xx")
        for doc in DocBin().from_disk(path).get_docs(nlp.vocab):
            ents = [[e.start_char, e.end_char, e.label_, e.text] for e in doc.ents]
            out.append({"text": doc.text, "entities": ents})
    elif fmt == "spacy":
        import spacy
        from spacy.tokens import Doc

        nlp = spacy.blank("xx")
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                obj = json.loads(line)
                doc = Doc(nlp.vocab).from_json(obj, validate=True)
                assert doc.text == obj["text"], (doc.text, obj["text"])
                ents = [[e.start_char, e.end_char, e.label_, e.text] for e in doc.ents]
                out.append({"text": doc.text, "entities": ents})
    elif fmt == "label-studio":
        with open(path, encoding="utf-8") as f:
            tasks = json.load(f)
        for task in tasks:
            text = task["data"]["text"]
            regions = []
            for key in ("annotations", "predictions"):
                for a in task.get(key, []):
                    regions.extend(a["result"])
            ents = []
            for r in regions:
                v = r["value"]
                s, e = chars_of_utf16(text, v["start"]), chars_of_utf16(text, v["end"])
                assert text[s:e] == v["text"], (text[s:e], v["text"])
                ents.append([s, e, v["labels"][0], text[s:e]])
            out.append({"text": text, "entities": ents})
    elif fmt == "brat":
        from pybrat.parser import BratParser

        examples = BratParser(error="raise").parse(path)
        for ex in sorted(examples, key=lambda x: x.id):
            ents = []
            for e in sorted(ex.entities, key=lambda e: e.spans[0].start):
                s, t = e.spans[0].start, e.spans[-1].end
                ents.append([s, t, e.type, ex.text[s:t]])
            out.append({"text": ex.text, "entities": ents, "id": ex.id})
    else:
        raise SystemExit(f"read: unknown format {fmt}")
    return out


def write(fmt, sample_path, out_path):
    with open(sample_path, encoding="utf-8") as f:
        sample = json.load(f)
    labels = sorted({e[2] for s in sample for e in s["entities"]})
    wrote = []
    if fmt in ("hf", "hf-json"):
        import datasets

        names = ["O"] + [f"{p}-{l}" for l in labels for p in ("B", "I")]
        index = {n: i for i, n in enumerate(names)}
        rows = {"tokens": [], "ner_tags": []}
        for s in sample:
            text = s["text"]
            toks = [text[a:b] for a, b in s["words"]]
            tags = ["O"] * len(toks)
            for a, b, label in s["entities"]:
                inside = [i for i, (x, y) in enumerate(s["words"]) if x >= a and y <= b]
                for k, i in enumerate(inside):
                    tags[i] = ("B-" if k == 0 else "I-") + label
            rows["tokens"].append(toks)
            rows["ner_tags"].append([index[t] for t in tags])
            wrote.append(words_entities(toks, tags))
        features = datasets.Features(
            {
                "tokens": datasets.Sequence(datasets.Value("string")),
                "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names)),
            }
        )
        ds = datasets.Dataset.from_dict(rows, features=features)
        if fmt == "hf":
            ds.to_parquet(out_path)
        else:
            ds.to_json(out_path, force_ascii=False)
            ds.info.write_to_directory(os.path.dirname(out_path))
    elif fmt in ("spacy", "spacy-docbin"):
        import spacy
        from spacy.tokens import DocBin

        nlp = spacy.blank("xx")
        docbin = DocBin()
        with open(out_path if fmt == "spacy" else os.devnull, "w", encoding="utf-8") as f:
            for s in sample:
                doc = nlp.make_doc(s["text"])
                spans = []
                for a, b, label in s["entities"]:
                    span = doc.char_span(a, b, label=label, alignment_mode="expand")
                    assert span is not None, (s["text"], a, b)
                    spans.append(span)
                doc.ents = spans
                f.write(json.dumps(doc.to_json(), ensure_ascii=False) + "\n")
                docbin.add(doc)
                ents = [[e.start_char, e.end_char, e.label_, e.text] for e in doc.ents]
                wrote.append({"text": doc.text, "entities": ents})
        if fmt == "spacy-docbin":
            docbin.to_disk(out_path)
    elif fmt == "label-studio":
        from label_studio_sdk.label_interface import LabelInterface

        li = LabelInterface(
            NER_CONFIG.format(labels="".join(f'<Label value="{l}"/>' for l in labels))
        )
        tasks = []
        for n, s in enumerate(sample):
            text = s["text"]
            payload = [
                {
                    "start": utf16_of_chars(text, a),
                    "end": utf16_of_chars(text, b),
                    "labels": [label],
                }
                for a, b, label in s["entities"]
            ]
            regions = [json.loads(r.to_json()) for r in li.create_regions({"label": payload})]
            for r, (a, b, _) in zip(regions, s["entities"]):
                r["value"]["text"] = text[a:b]
            annotation = {"id": n + 1, "result": regions, "was_cancelled": False}
            assert li.validate_annotation(annotation), annotation
            tasks.append({"id": n + 1, "data": {"text": text}, "annotations": [annotation]})
            wrote.append(
                {"text": text, "entities": [[a, b, l, text[a:b]] for a, b, l in s["entities"]]}
            )
        with open(out_path, "w", encoding="utf-8") as f:
            json.dump(tasks, f, ensure_ascii=False, indent=2)
    else:
        raise SystemExit(f"write: unknown format {fmt}")
    return wrote


def validate_ls(path, labels):
    from label_studio_sdk.label_interface import LabelInterface

    li = LabelInterface(
        NER_CONFIG.format(labels="".join(f'<Label value="{l}"/>' for l in labels))
    )
    with open(path, encoding="utf-8") as f:
        tasks = json.load(f)
    errors = []
    for i, task in enumerate(tasks):
        if not li.validate_task({"data": task["data"]}):
            errors.append(f"task {i}: data does not fit the labeling config")
        for p in task.get("predictions", []):
            errors += [f"task {i}: {e}" for e in li.validate_prediction(p, return_errors=True)]
        for a in task.get("annotations", []):
            errors += [f"task {i}: {e}" for e in li._validate_object_logic(a)]
    return {"tasks": len(tasks), "errors": errors}


def main():
    cmd = sys.argv[1]
    if cmd == "read":
        result = read(sys.argv[2], sys.argv[3])
    elif cmd == "write":
        result = write(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "validate-ls":
        result = validate_ls(sys.argv[2], sys.argv[3:])
    else:
        raise SystemExit(f"unknown command {cmd}")
    json.dump(result, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
