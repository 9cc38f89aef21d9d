//! Command-line arguments. Names here are the user-facing contract.

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "aligntds",
    version,
    about = "Token distribution shift: what alignment tuning changes in a language model, token by token"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log verbosity: error, warn, info, debug or trace (ALIGNTDS_LOG overrides).
    #[arg(long, global = true, default_value = "warn")]
    pub log_level: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Describe a model: architecture, size, vocabulary, special tokens, chat template.
    Inspect(InspectArgs),
    /// Generate an answer greedily.
    Generate(GenerateArgs),
}

/// Options every command that loads a model accepts.
#[derive(Debug, Args, Clone)]
pub struct ModelOptions {
    /// Weight precision: auto, f32, bf16, f16, or q (keep GGUF weights quantized). auto: f32, or for
    /// GGUF files f32 when the models fit comfortably in memory, else bf16, else q.
    #[arg(long, default_value = "auto")]
    pub dtype: String,
    /// cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Chat template: a shipped name (llama2-study, smollm2, chatml), a name the model lists, or a Jinja file.
    #[arg(long, value_name = "NAME|FILE")]
    pub chat_template: Option<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A checkpoint directory or Hugging Face Hub id (owner/name[@revision]).
    pub model: String,
    #[command(flatten)]
    pub options: ModelOptions,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// A checkpoint directory or Hugging Face Hub id (owner/name[@revision]).
    pub model: String,
    /// Raw prompt text, tokenized as is (BOS added when the tokenizer adds one).
    #[arg(long, conflicts_with = "chat", required_unless_present = "chat")]
    pub prompt: Option<String>,
    /// A user message, rendered with the chat template.
    #[arg(long)]
    pub chat: Option<String>,
    /// A system message for --chat.
    #[arg(long, requires = "chat")]
    pub system: Option<String>,
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// Stop before this string (repeatable); it is not part of the answer.
    #[arg(long = "stop", value_name = "S")]
    pub stops: Vec<String>,
    /// Print each generated token with its log-probability.
    #[arg(long)]
    pub logprobs: bool,
    #[command(flatten)]
    pub options: ModelOptions,
}
