use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use glassbox::gguf::GgufFile;
use glassbox::inspect::ModelSummary;

#[derive(Parser)]
#[command(name = "glassbox", version, about = "Look inside a language model on your own device")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a GGUF model's card: architecture, sizes, tokenizer and tensor types.
    Info {
        model: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Also list every tensor: name, type, shape (ggml order) and file offset.
        #[arg(long)]
        tensors: bool,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("glassbox: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    let written = match cli.command {
        Command::Info { model, json, tensors } => {
            let file = GgufFile::open(&model).map_err(|e| e.to_string())?;
            let summary = ModelSummary::from_gguf(&file.header).map_err(|e| e.to_string())?;
            if json {
                let text = if tensors {
                    serde_json::to_string_pretty(&summary)
                } else {
                    serde_json::to_string_pretty(&summary.card)
                };
                writeln!(out, "{}", text.map_err(|e| e.to_string())?)
            } else {
                writeln!(out, "{}", summary.card).and_then(|()| {
                    summary.tensors.iter().filter(|_| tensors).try_for_each(|t| {
                        writeln!(out, "{:<40} {:<6} {:?} @{}", t.name, t.ggml_type, t.shape, t.file_offset)
                    })
                })
            }
        }
    };
    match written {
        // A closed pipe (`glassbox info --tensors m.gguf | head`) is the reader's choice, not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(|e| e.to_string()),
    }
}
