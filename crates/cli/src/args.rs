//! Command-line arguments. Names here are the user-facing contract.

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

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
    /// Token distribution shift between an aligned and a base model over a set of queries.
    Analyze(Box<AnalyzeArgs>),
    /// Handover decoding: both models write each answer, a policy choosing whose token each
    /// is (aligned, base, first:N, uncertain:G, shifted, kl:T); one run folder per arm under
    /// OUT/arms/ and the curve in OUT/handover.json.
    Handover(Box<HandoverArgs>),
    /// Print the summary of a finished analysis again.
    Summarize(SummarizeArgs),
    /// Combine the shards of one analysis (`analyze --shard i/n`) into one run.
    Merge(MergeArgs),
    /// Compare two runs over the same queries, or two sides of one run (RUN@SIDE): each headline
    /// statistic's difference with a paired-bootstrap 95 % interval and a paired permutation p-value.
    Compare(CompareArgs),
    /// Render one or more runs as a self-contained report (index.html, report.md, SVG figures).
    Report(ReportArgs),
    /// The live demo: a web page and JSON + SSE API that stream an aligned answer coloured by shift,
    /// and let either model continue from any token.
    Serve(Box<ServeArgs>),
    /// Measure scoring and generation speed on this machine (scripts/bench.sh adds the peers).
    Bench(BenchArgs),
    /// Print a shell completion script (e.g. `aligntds completions bash > ~/.local/share/bash-completion/completions/aligntds`).
    Completions(CompletionsArgs),
    /// Print the man page, or write one page per command with --out DIR.
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write aligntds.1 and one aligntds-COMMAND.1 per command into DIR instead of printing aligntds.1.
    #[arg(long, value_name = "DIR")]
    pub out: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Model reference: a checkpoint folder, a .gguf file or a Hub id.
    pub model: String,
    /// Tokens to score in one pass (0 skips scoring).
    #[arg(long, default_value_t = 512)]
    pub score_tokens: usize,
    /// Tokens to generate greedily (0 skips generation).
    #[arg(long, default_value_t = 128)]
    pub generate_tokens: usize,
    /// Sequences generated together (each --generate-tokens long); 1 is one at a time.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: u64,
    /// Measured runs per case (after one warm-up run); the best counts.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub runtime: RuntimeOptions,
}

/// Options every command that loads a model accepts.
#[derive(Debug, Args, Clone)]
pub struct RuntimeOptions {
    /// Weight precision. auto: f32, or for GGUF files f32 when the models fit
    /// comfortably in memory, else bf16, else q (GGUF weights kept quantized).
    #[arg(long, value_enum, default_value_t = DtypeArg::Auto)]
    pub dtype: DtypeArg,
    /// cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Runtime options plus a chat template, for commands that load one model.
#[derive(Debug, Args, Clone)]
pub struct ModelOptions {
    #[command(flatten)]
    pub runtime: RuntimeOptions,
    /// Chat template: a shipped name (llama2-study, smollm2, chatml), a name the model lists, or a Jinja file.
    #[arg(long, value_name = "NAME|FILE")]
    pub chat_template: Option<String>,
}

/// A model run by vLLM servers instead of the local engine.
#[derive(Debug, Args, Clone)]
pub struct ServerArgs {
    /// A vLLM server running the model (repeatable: replicas of one model). MODEL then
    /// gives only the tokenizer, chat template and special tokens; its weights are never read.
    #[arg(long = "server", value_name = "URL")]
    pub servers: Vec<String>,
    /// The model's name on the server (default: the one model it serves).
    #[arg(long, requires = "servers")]
    pub served_name: Option<String>,
}

/// How remote sides talk to their servers.
#[derive(Debug, Args, Clone)]
pub struct ServerTuning {
    /// Requests in flight per server; vLLM batches what is in flight.
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub max_in_flight: usize,
    /// Seconds one request to a server may take.
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    pub request_timeout: u64,
    /// Seconds a request keeps being retried while no server of its side answers.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub retry_window: u64,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A checkpoint directory or Hugging Face Hub id (owner/name[@revision]).
    pub model: String,
    #[command(flatten)]
    pub options: ModelOptions,
    #[command(flatten)]
    pub server: ServerArgs,
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
    /// Pass `enable_thinking` to the chat template (Qwen3's switch).
    #[arg(long, requires = "chat", value_name = "true|false")]
    pub enable_thinking: Option<bool>,
    /// The most tokens to generate.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// Stop before this string (repeatable); it is not part of the answer.
    #[arg(long = "stop", value_name = "S")]
    pub stops: Vec<String>,
    /// Print each generated token with its log-probability.
    #[arg(long)]
    pub logprobs: bool,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub options: ModelOptions,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Drawing answer tokens from the distribution instead of greedily (any
/// of these turns sampling on; without them generation is greedy).
#[derive(Debug, Args, Clone, Default)]
pub struct SamplingArgs {
    /// Sample at this temperature (> 0; 1: the model's own distribution).
    #[arg(long, help_heading = "Sampling")]
    pub temperature: Option<f32>,
    /// Sample from the smallest set of most probable tokens whose
    /// probabilities reach this share (0 < P <= 1).
    #[arg(long, value_name = "P", help_heading = "Sampling")]
    pub top_p: Option<f32>,
    /// Sample from the K most probable tokens only (not --top-k, the number
    /// of tokens a run stores per position).
    #[arg(long, value_name = "K", help_heading = "Sampling")]
    pub top_k_sampling: Option<usize>,
    /// The seed of the draws (default 0): the same seed gives the same answer.
    #[arg(long, help_heading = "Sampling")]
    pub seed: Option<u64>,
}

/// The two sides of a pair and what is scored: shared by `analyze` and `serve`.
#[derive(Debug, Args)]
pub struct PairArgs {
    /// The aligned model (checkpoint directory, .gguf file or Hub id). Required
    /// unless a study file (`analyze --study`) names it.
    #[arg(long)]
    pub aligned: Option<String>,
    /// The base model; may be the same as --aligned (then only the contexts differ).
    #[arg(long)]
    pub base: Option<String>,
    /// A vLLM server running the aligned model (repeatable: replicas). --aligned then gives
    /// only the tokenizer, chat template and special tokens; its weights are never read.
    #[arg(long = "aligned-server", value_name = "URL")]
    pub aligned_servers: Vec<String>,
    /// A vLLM server running the base model (repeatable: replicas).
    #[arg(long = "base-server", value_name = "URL")]
    pub base_servers: Vec<String>,
    /// The aligned model's name on its servers (default: the one model they serve).
    #[arg(long, value_name = "NAME")]
    pub aligned_served_name: Option<String>,
    /// The base model's name on its servers (default: the one model they serve).
    #[arg(long, value_name = "NAME")]
    pub base_served_name: Option<String>,
    #[command(flatten)]
    pub server_tuning: ServerTuning,
    /// Prompt format of the aligned side.
    #[arg(long, value_enum, default_value_t = ContextArg::Chat)]
    pub aligned_context: ContextArg,
    /// Prompt format of the base side.
    #[arg(long, value_enum, default_value_t = ContextArg::Template)]
    pub base_context: ContextArg,
    /// Chat template of the aligned side: a shipped name (llama2-study, smollm2, chatml),
    /// a name the model lists, or a Jinja file (default: the model's own).
    #[arg(long, value_name = "NAME|FILE")]
    pub aligned_chat_template: Option<String>,
    /// Chat template of the base side, for a `chat` base context (as --aligned-chat-template).
    #[arg(long, value_name = "NAME|FILE")]
    pub base_chat_template: Option<String>,
    /// System message for `chat` contexts.
    #[arg(long)]
    pub system: Option<String>,
    /// Pass `enable_thinking` to the templates of `chat` contexts (Qwen3's
    /// switch: false prefills an empty <think></think> block); unset: the
    /// template's default.
    #[arg(long, value_name = "true|false")]
    pub enable_thinking: Option<bool>,
    /// URIAL prefix file for the aligned side (default: the shipped one).
    #[arg(long)]
    pub aligned_prefix: Option<std::path::PathBuf>,
    /// URIAL prefix file for the base side (default: the shipped one).
    #[arg(long)]
    pub base_prefix: Option<std::path::PathBuf>,
    /// `custom` context template containing {query}.
    #[arg(long)]
    pub aligned_template: Option<String>,
    /// `custom` context template of the base side, containing {query}.
    #[arg(long)]
    pub base_template: Option<String>,
    /// Stop generation before this string (repeatable).
    #[arg(long = "stop", value_name = "S")]
    pub stops: Vec<String>,
    /// Top tokens stored per side and position.
    #[arg(long, default_value_t = 10)]
    pub top_k: usize,
    /// The highest base rank of an unshifted token (the paper's 1).
    #[arg(long, default_value_t = 1)]
    pub unshifted_max: u32,
    /// The highest base rank of a marginal token (the paper's 3); beyond it, shifted.
    #[arg(long, default_value_t = 3)]
    pub marginal_max: u32,
    #[command(flatten)]
    pub runtime: RuntimeOptions,
}

/// More reference sides scoring the same answer (`analyze` only). Each option
/// takes NAME=VALUE and sets that side's counterpart of a --base-* option.
#[derive(Debug, Args)]
pub struct CompareSideArgs {
    /// A reference side after --base, named NAME (repeatable; the order is the stage
    /// order: e.g. --compare sft=M1 --compare dpo=M2). The same model may appear
    /// under several names with other contexts; it loads once.
    #[arg(long = "compare", value_name = "NAME=MODEL")]
    pub sides: Vec<String>,
    /// Prompt format of a compared side (default: template).
    #[arg(long = "compare-context", value_name = "NAME=KIND")]
    pub contexts: Vec<String>,
    /// Chat template of a compared side, for a `chat` context (a name or a Jinja file).
    #[arg(long = "compare-chat-template", value_name = "NAME=TEMPLATE")]
    pub chat_templates: Vec<String>,
    /// URIAL prefix file of a compared side.
    #[arg(long = "compare-prefix", value_name = "NAME=FILE")]
    pub prefixes: Vec<String>,
    /// `custom` context template (with {query}) of a compared side.
    #[arg(long = "compare-template", value_name = "NAME=TEMPLATE")]
    pub templates: Vec<String>,
    /// A vLLM server running a compared side's model (repeatable: replicas).
    #[arg(long = "compare-server", value_name = "NAME=URL")]
    pub servers: Vec<String>,
    /// A compared side's model name on its servers (default: the one model they serve).
    #[arg(long = "compare-served-name", value_name = "NAME=SERVED")]
    pub served_names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct HandoverArgs {
    /// A policy, repeatable; a list after the colon makes one arm per value
    /// (e.g. --policy base --policy first:5 --policy uncertain:0.1,0.4). The
    /// `aligned` arm always runs, first.
    #[arg(long = "policy", value_name = "POLICY", required = true)]
    pub policies: Vec<String>,
    #[command(flatten)]
    pub study: AnalyzeArgs,
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    #[command(flatten)]
    pub pair: PairArgs,
    #[command(flatten)]
    pub compare: CompareSideArgs,
    /// A study file (TOML; see docs/analysis.md): the sides (aligned, base, any compared
    /// ones), the data, output folder and every setting that changes results; every run
    /// folder holds one (study.toml) that reproduces it. Side flags are refused beside
    /// it; other flags given override the file's keys.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["aligned", "base", "sides"])]
    pub study: Option<std::path::PathBuf>,
    /// Go on when the data file of a study file that records its sha256 (a run's
    /// study.toml) has changed since that run.
    #[arg(long, requires = "study")]
    pub allow_changed_data: bool,
    /// Queries: .json (AlignTDS/URIAL, AlpacaEval; a list or {"data"|"instances"|"records": [...]}),
    /// .jsonl/.ndjson, .parquet (Hugging Face datasets), .csv with a header, or .txt (one query per line).
    #[arg(long, conflicts_with = "query")]
    pub data: Option<std::path::PathBuf>,
    /// A single query instead of --data.
    #[arg(long)]
    pub query: Option<String>,
    /// Output directory.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Split the statistics by this record field (e.g. just-eval-instruct's `category`),
    /// with intervals, in summary.json's `groups`.
    #[arg(long, value_name = "FIELD")]
    pub group_by: Option<String>,
    /// The record field holding the query (default: pure_input, instruction, prompt or
    /// query). A dotted path reaches into nested JSON: turns.0, conversation.0.content.
    #[arg(long, value_name = "FIELD")]
    pub query_field: Option<String>,
    /// The record field holding an answer to score (default: output or response).
    #[arg(long, value_name = "FIELD")]
    pub answer_field: Option<String>,
    /// The record field holding the record's id (default: id, else the record's index).
    #[arg(long, value_name = "FIELD")]
    pub id_field: Option<String>,
    /// Where answers come from: auto (the data set's where present, else generated), dataset, generate.
    #[arg(long, value_enum, default_value_t = ResponseArg::Auto)]
    pub response: ResponseArg,
    /// The most tokens a generated answer may have.
    #[arg(long, default_value_t = 512)]
    pub max_new_tokens: usize,
    /// Answers generated together by the local engine (default: as many as fit
    /// the machine, at most 32; 1 is one at a time). Up to 32 the answers do not depend on it.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: Option<u64>,
    /// Run every sequence from its first token, instead of running a context
    /// prefix shared by many records (a URIAL prefix, a long system prompt)
    /// once per side and continuing its cache.
    #[arg(long)]
    pub no_prefix_reuse: bool,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Answers drawn per query (sampled: at temperature 1 unless the
    /// sampling options say otherwise). Sample K of record ID is example
    /// `ID#K`; intervals resample queries.
    #[arg(long, value_name = "N", help_heading = "Sampling", value_parser = clap::value_parser!(u64).range(1..))]
    pub samples: Option<u64>,
    /// The side that answers: aligned (default), base, or a compared
    /// side's name. Each other side's rank of its tokens sets their category.
    #[arg(long, value_name = "SIDE")]
    pub answered_by: Option<String>,
    /// Only the first N records.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Positions in the per-position curves of summary.json.
    #[arg(long, default_value_t = 200)]
    pub curve_positions: usize,
    /// Replace an earlier run of other settings in --out (a run of the same settings resumes).
    #[arg(long)]
    pub overwrite: bool,
    /// Process the deterministic subset i of n (records whose index modulo n is i); combine with `aligntds merge`.
    #[arg(long, value_name = "i/n")]
    pub shard: Option<String>,
    /// A record that cannot be analyzed (context + answer over the model's context, an empty
    /// answer) is an error instead of being skipped and counted.
    #[arg(long)]
    pub strict: bool,
    /// No progress output.
    #[arg(long)]
    pub quiet: bool,
    /// The flags given on the command line (or by environment), as (id, --flag):
    /// a study file's key yields to these, and to no default.
    #[arg(skip)]
    pub given: Vec<(String, String)>,
}

/// Records in `command` which of its flags the user gave (`analyze` only, where a
/// study file's keys sit between the flags and the defaults).
pub fn note_given(command: &mut Command, matches: &clap::ArgMatches) {
    use clap::parser::ValueSource;
    let (args, name) = match command {
        Command::Analyze(args) => (args.as_mut(), "analyze"),
        Command::Handover(args) => (&mut args.study, "handover"),
        _ => return,
    };
    let Some(m) = matches.subcommand_matches(name) else {
        return;
    };
    let definition = Cli::command();
    let analyze = definition.find_subcommand(name);
    args.given = m
        .ids()
        .filter(|id| {
            matches!(
                m.value_source(id.as_str()),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        })
        .map(|id| {
            let long = analyze
                .and_then(|c| c.get_arguments().find(|a| a.get_id() == id))
                .and_then(|a| a.get_long())
                .map_or_else(|| id.to_string(), |l| format!("--{l}"));
            (id.to_string(), long)
        })
        .collect();
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub pair: PairArgs,
    /// Run folders to browse from the same server (repeatable), with the report's pages.
    #[arg(long = "runs", value_name = "DIR")]
    pub runs: Vec<std::path::PathBuf>,
    /// Where "save as run" writes run folders.
    #[arg(long, default_value = "runs/live", value_name = "DIR")]
    pub save_dir: std::path::PathBuf,
    /// Address to listen on. Anything but loopback requires a token (generated unless
    /// --token gives one; printed in the address to open).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one; the address is printed at once).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// A host name the server answers besides localhost, 127.0.0.1 and [::1] (repeatable):
    /// the name a reverse proxy forwards, NAME (any port) or NAME:PORT.
    #[arg(long = "allowed-host", value_name = "NAME")]
    pub allowed_hosts: Vec<String>,
    /// The token every request must carry: required off loopback (generated when not
    /// given), optional on loopback. ALIGNTDS_TOKEN keeps it out of the process list.
    #[arg(
        long,
        env = "ALIGNTDS_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// New tokens when a request names none.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// The most new tokens a request may ask for (more: 413).
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub max_new_tokens_cap: usize,
    /// The most bytes a query (or system message) may hold (more: 413).
    #[arg(long, default_value_t = 8192, value_name = "BYTES")]
    pub max_query_bytes: usize,
    /// Requests that may wait while one answer generates (more: 429).
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub queue: usize,
    /// Seconds one request may generate before it stops.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub time_limit: u64,
}

#[derive(Debug, Args)]
pub struct SummarizeArgs {
    /// A directory written by `aligntds analyze`.
    pub dir: std::path::PathBuf,
    /// Print summary.json's aggregates as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Run directories of the shards (of `analyze`, or of `handover`: each arm merges and the curve is drawn anew).
    #[arg(required = true)]
    pub dirs: Vec<std::path::PathBuf>,
    /// Output directory of the merged run (a new or empty folder).
    #[arg(long)]
    pub out: std::path::PathBuf,
    /// Positions in the per-position curves of summary.json.
    #[arg(long, default_value_t = 200)]
    pub curve_positions: usize,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Run A (the differences are A - B): a run folder, or RUN@SIDE for one reference side
    /// of a run with several (e.g. runs/stages@sft).
    pub a: String,
    /// Run B (a run folder or RUN@SIDE; two sides of one run compare on the same answers).
    pub b: String,
    /// Compare only the examples both runs hold (same id and query), saying how many.
    #[arg(long)]
    pub common: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Run directories written by `aligntds analyze` (several: compared side
    /// by side), or `aligntds handover` folders (their arms, and the curve).
    #[arg(required = true)]
    pub runs: Vec<std::path::PathBuf>,
    /// Where the report goes.
    #[arg(long)]
    pub out: std::path::PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DtypeArg {
    Auto,
    F32,
    Bf16,
    F16,
    /// Keep GGUF weights quantized.
    Q,
    /// As q, and decode steps quantize activations to 8 bits for integer
    /// dot products with Q8_0 and Q4_0 blocks (llama.cpp's arithmetic).
    Q8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ContextArg {
    /// The model's chat template with the query as the user message.
    Chat,
    /// The record's pre-rendered `input` field.
    Input,
    /// The study's zero-shot template.
    Template,
    /// The query and a newline.
    Plain,
    /// A URIAL in-context alignment prefix, then the zero-shot template.
    Urial,
    /// --aligned-template / --base-template with {query}.
    Custom,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResponseArg {
    Auto,
    Dataset,
    Generate,
}

#[cfg(test)]
#[path = "args_tests.rs"]
mod tests;
