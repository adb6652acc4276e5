//! Dataset readers and writers (CoNLL column files, LinkNER "spanner" JSON, JSONL).
