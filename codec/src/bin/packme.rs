//! `packme`: generate Rust from manifests, and encode or decode frames from the command
//! line with the schema-driven codec (to inspect captured traffic or craft test input).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use packme::codegen::{generate, Options};
use packme::json::{from_hex, to_hex};
use packme::schema::Schema;

#[derive(Parser)]
#[command(
    name = "packme",
    version,
    about = "PackMe manifest compiler and frame inspector"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compile the manifests of a directory into Rust modules (mod.rs + one file per manifest).
    Generate {
        /// Directory with the *.json manifests.
        manifests: PathBuf,
        /// Where to write the Rust files.
        out_dir: PathBuf,
        /// Also generate JSON conversions (ToJson / FromJson).
        #[arg(long)]
        json: bool,
    },
    /// Read a JSON object of field values on stdin, print the frame as lowercase hex.
    Encode {
        /// Directory with the *.json manifests.
        #[arg(long)]
        manifests: PathBuf,
        /// Class name of the message (`GetUserRequest`; `stem:Class` if ambiguous).
        #[arg(long)]
        message: String,
        /// Transaction id (default: 0).
        #[arg(long, default_value_t = 0)]
        transaction_id: u32,
    },
    /// Read a frame as hex on stdin, print {"class", "transaction_id", "values"} as JSON.
    Decode {
        /// Directory with the *.json manifests.
        #[arg(long)]
        manifests: PathBuf,
    },
}

fn stdin() -> Result<String, String> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read stdin: {e}"))?;
    Ok(text)
}

fn compile(dir: &PathBuf) -> Result<Schema, String> {
    let schema = Schema::compile_dir(dir).map_err(|e| e.to_string().replace('\n', "; "))?;
    for warning in &schema.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(schema)
}

fn run(cli: Cli) -> Result<String, String> {
    match cli.command {
        Command::Generate {
            manifests,
            out_dir,
            json,
        } => {
            let schema = compile(&manifests)?;
            let generated = generate(&schema, &Options { json })
                .map_err(|e| e.to_string().replace('\n', "; "))?;
            let files = generated
                .write_dir(&out_dir)
                .map_err(|e| format!("cannot write {}: {e}", out_dir.display()))?;
            Ok(files.iter().map(|f| format!("{}\n", f.display())).collect())
        }
        Command::Encode {
            manifests,
            message,
            transaction_id,
        } => {
            let schema = compile(&manifests)?;
            let message = schema.message_by_name(&message)?;
            let values: serde_json::Value = serde_json::from_str(&stdin()?)
                .map_err(|e| format!("invalid JSON on stdin: {e}"))?;
            let frame = schema
                .encode_json(message, transaction_id, &values)
                .map_err(|e| e.to_string())?;
            Ok(format!("{}\n", to_hex(&frame)))
        }
        Command::Decode { manifests } => {
            let schema = compile(&manifests)?;
            let frame = from_hex(&stdin()?).map_err(|e| e.to_string())?;
            let decoded = schema
                .decode_json(&frame.into())
                .map_err(|e| e.to_string())?;
            let out = serde_json::json!({
                "class": schema.classes[decoded.message.class].name,
                "transaction_id": decoded.transaction_id,
                "values": decoded.values,
            });
            Ok(format!("{out}\n"))
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(output) => {
            let _ = std::io::stdout().write_all(output.as_bytes());
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("packme: {message}");
            ExitCode::FAILURE
        }
    }
}
