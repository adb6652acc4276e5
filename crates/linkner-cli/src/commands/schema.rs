//! `linkner schema`: prints a label schema as an editable file (TOML or JSON).
//!
//! ```text
//! linkner schema --from-data train.conll [--format conll] [--json] > schema.toml
//! linkner schema conll03 | my-schema.toml | MODEL_DIR          [--json]
//! ```
//!
//! `--from-data` infers the schema of a labelled file (its types in order of first appearance,
//! LLM names derived from the tags, generic descriptions — or the built-in schema whose types
//! are exactly the file's); edit the `llm_name` and `description` of each type and give the
//! file to `linkner train --schema` (or `link`, `annotate`, `eval`, `predict`). A built-in name,
//! a schema file (checked: errors name the field) or a tagger folder (the schema it stores)
//! prints that schema.

use std::path::PathBuf;

use clap::Args;
use linkner::core::LabelSchema;
use linkner::tagger::checkpoint_schema;

use super::CliError;
use super::tagger_common::schema_from_data;

/// Arguments of `linkner schema`.
#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// A built-in schema name, a schema file or a tagger folder to print (instead of
    /// `--from-data`).
    #[arg(value_name = "NAME|FILE|MODEL_DIR", conflicts_with = "from_data")]
    pub schema: Option<String>,
    /// Infer the schema of this labelled file (CoNLL, spanner JSON or JSONL).
    #[arg(long, value_name = "FILE")]
    pub from_data: Option<PathBuf>,
    /// How `--from-data` is read (format and reader options).
    #[command(flatten)]
    pub formats: super::formats::DataArgs,
    /// Print JSON instead of TOML.
    #[arg(long)]
    pub json: bool,
}

/// Runs `linkner schema`.
pub fn run(args: SchemaArgs) -> Result<(), CliError> {
    let schema = match (&args.from_data, &args.schema) {
        (Some(path), _) => {
            let (schema, builtin) = schema_from_data(path, &args.formats)?;
            if builtin {
                eprintln!(
                    "the types of {} are those of the built-in schema `{}`: printing it",
                    path.display(),
                    schema.name
                );
            } else {
                eprintln!(
                    "inferred from {}: edit each type's llm_name (what the LLM is shown and \
                     answers) and description (one or two sentences from your annotation \
                     guidelines), then pass the file with --schema",
                    path.display()
                );
            }
            schema
        }
        (None, Some(spec)) => {
            let dir = PathBuf::from(spec);
            if dir.is_dir() {
                checkpoint_schema(&dir, None)?
            } else {
                LabelSchema::resolve(spec)?
            }
        }
        (None, None) => {
            return Err(
                "give --from-data FILE, or a schema name, schema file or tagger folder \
                        to print"
                    .into(),
            );
        }
    };
    let text = if args.json {
        schema.to_json_string()?
    } else {
        schema.to_toml_string()?
    };
    print!("{text}");
    if !text.ends_with('\n') {
        println!();
    }
    Ok(())
}
