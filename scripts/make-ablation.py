"""Writes the ablation configs (one technique each over linkner 0.1's linking) from a tuned config.
usage: make_ablation.py TUNED.json OUTDIR
Every config keeps the tuned estimator and routing policy; `00-plain` is linkner 0.1's linking
(replace, label names, no marks/hint, capitalised fixed examples, no retrieval, no calibration);
`09-default` is the plain prompt with the default merge of a config without one, `09-tuned` the
tuned config, `10-all` the tuned config with every prompt technique on."""
import copy, json, os, sys
tuned = json.load(open(sys.argv[1]))
out = sys.argv[2]
os.makedirs(out, exist_ok=True)
def plain():
    c = copy.deepcopy(tuned)
    c["merge"] = {"type": "replace"}
    t = c["llm"].setdefault("template", {})
    t["mark_span"] = False; t["local_hint"] = False; t["answer_keys"] = "names"
    c["llm"]["calibrate"] = False
    if c.get("examples"):
        c["examples"]["negatives"] = "capitalised"; c["examples"]["retrieve"] = 0
    return c
variants = {}
variants["00-plain"] = plain()
c = plain(); c["llm"]["template"]["answer_keys"] = "letters"; variants["01-keys"] = c
c = plain(); c["llm"]["calibrate"] = True; variants["02-calibrate"] = c
# A per-type merge: its default stands for the tuned merge's weight and k.
tuned_merge = tuned.get("merge", {})
if tuned_merge.get("type") == "per_type":
    tuned_merge = tuned_merge.get("default", {})
w = tuned_merge.get("weight", 0.5) if tuned_merge.get("type") == "fuse" else 0.5
c = plain(); c["merge"] = {"type": "fuse", "weight": w}; variants["03-fuse"] = c
k = tuned_merge.get("k", 2) if tuned_merge.get("type") == "rerank" else 2
c = plain(); c["merge"] = {"type": "rerank", "k": k}; variants["04-rerank"] = c
c = plain(); c["llm"]["template"]["mark_span"] = True; variants["05-mark"] = c
c = plain(); c["llm"]["template"]["local_hint"] = True; variants["06-hint"] = c
if tuned.get("examples"):
    c = plain(); c["examples"]["negatives"] = "varied"; variants["07-varied"] = c
    c = plain(); c["examples"]["retrieve"] = tuned["examples"].get("retrieve") or 4; variants["08-retrieve"] = c
# The generic default merge (a config without `merge`: fuse 0.3, LLM temperature 4, its doubt)
# at the tuned routing, and the tuned config itself.
c = plain(); c["merge"] = {"type": "fuse", "weight": 0.3, "temperature": 4.0, "doubt": True}
variants["09-default"] = c
variants["09-tuned"] = copy.deepcopy(tuned)
# Everything together: the tuned routing and merge with every prompt technique switched on.
c = copy.deepcopy(tuned)
t = c["llm"].setdefault("template", {})
t["mark_span"] = True; t["local_hint"] = True; t["answer_keys"] = "letters"
if c.get("examples"):
    c["examples"]["negatives"] = "varied"; c["examples"]["retrieve"] = c["examples"].get("retrieve") or 4
variants["10-all"] = c
for name, c in variants.items():
    json.dump(c, open(os.path.join(out, name + ".json"), "w"), indent=2)
print("wrote", len(variants), "configs to", out)
