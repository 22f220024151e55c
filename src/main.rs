use clap::{Parser, Subcommand};

use gema::sentiment::cli::{run_eval, run_train, EvalArgs, TrainArgs};

/// gema: streaming social listening and sentiment (English and Indonesian).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train the fast sentiment model and write it with its manifest to `models/`.
    Train(TrainArgs),
    /// Score a sentiment model on labelled JSONL files.
    Eval(EvalArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Train(args) => run_train(&args),
        Command::Eval(args) => run_eval(&args),
    }
}
