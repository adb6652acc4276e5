//! # linkner-llm
//!
//! The LLM side of linkner: an LLM does not find entities, it classifies one uncertain entity in
//! its sentence into one of the schema's types or "not an entity". This crate holds the async
//! `LlmClassifier` trait and an OpenAI-compatible backend over reqwest (OpenAI, vLLM, llama.cpp's
//! server and Ollama all speak it), with prompts, strict answer parsing, retries and a cache.
//!
//! Status: the crate is being built (see the LLM issue).
