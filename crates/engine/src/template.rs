//! Chat templates rendered with minijinja under the conventions Hugging Face
//! templates rely on: trim_blocks and lstrip_blocks on, loop controls,
//! `raise_exception`, `strftime_now`, a Python-style `tojson`, Python string
//! methods, and `bos_token` / `eos_token` in the context.

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::value::{Kwargs, Serde};
use minijinja::{Environment, ErrorKind, Value};
use serde::Serialize;

use crate::error::{EngineError, Result};

/// Templates shipped with aligntds, selectable by name.
pub const BUILTIN_TEMPLATES: &[(&str, &str, &str)] = &[
    (
        "llama2-study",
        include_str!("../templates/llama2-study.jinja"),
        "Llama-2-chat exactly as the original TDS study fed it (default system prompt, ' \\n ' after <</SYS>>, trailing space)",
    ),
    (
        "smollm2",
        include_str!("../templates/smollm2.jinja"),
        "SmolLM2-Instruct's ChatML with its default system prompt",
    ),
    ("chatml", include_str!("../templates/chatml.jinja"), "plain ChatML, no default system prompt"),
];

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: &str, content: &str) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// Builds the usual message list: an optional system message, then the user's query.
pub fn single_turn(query: &str, system: Option<&str>) -> Vec<ChatMessage> {
    let mut messages = Vec::with_capacity(2);
    if let Some(system) = system {
        messages.push(ChatMessage::new("system", system));
    }
    messages.push(ChatMessage::new("user", query));
    messages
}

/// A named Jinja chat template.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    pub name: String,
    pub source: String,
}

/// Extra variables for a template's context, by name.
pub type TemplateVars = BTreeMap<String, serde_json::Value>;

/// Special-token texts exposed to templates.
#[derive(Debug, Clone, Default)]
pub struct TemplateTokens {
    pub bos_token: String,
    pub eos_token: String,
}

impl ChatTemplate {
    pub fn builtin(name: &str) -> Option<Self> {
        BUILTIN_TEMPLATES
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(n, s, _)| Self {
                name: (*n).into(),
                source: (*s).into(),
            })
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        Ok(Self {
            name: path.display().to_string(),
            source: crate::error::read_to_string(path)?,
        })
    }

    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        tokens: &TemplateTokens,
    ) -> Result<String> {
        self.render_with(
            messages,
            add_generation_prompt,
            tokens,
            &TemplateVars::new(),
        )
    }

    /// As [`Self::render`], with more variables in the template's context,
    /// as transformers' `apply_chat_template(..., **kwargs)` passes them
    /// (Qwen3's `enable_thinking`).
    pub fn render_with(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        tokens: &TemplateTokens,
        vars: &TemplateVars,
    ) -> Result<String> {
        let env = environment();
        let err = |e: minijinja::Error| EngineError::Template {
            name: self.name.clone(),
            message: describe(&e),
        };
        let template = env.template_from_str(&self.source).map_err(err)?;
        let mut ctx: BTreeMap<String, Value> = vars
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(Serde(v))))
            .collect();
        ctx.insert("messages".into(), Value::from(Serde(messages)));
        ctx.insert(
            "add_generation_prompt".into(),
            Value::from(add_generation_prompt),
        );
        ctx.insert("bos_token".into(), Value::from(tokens.bos_token.clone()));
        ctx.insert("eos_token".into(), Value::from(tokens.eos_token.clone()));
        template.render(ctx).map_err(err)
    }
}

fn describe(e: &minijinja::Error) -> String {
    let mut message = match e.kind() {
        ErrorKind::InvalidOperation => e.detail().unwrap_or("invalid operation").to_string(),
        _ => e.to_string(),
    };
    if let Some(line) = e.line() {
        message.push_str(&format!(" (template line {line})"));
    }
    message
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    let mut syntax = minijinja::syntax::SyntaxConfig::builder();
    syntax.trim_blocks(true).lstrip_blocks(true);
    if let Ok(syntax) = syntax.build() {
        env.set_syntax(syntax);
    }
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function(
        "raise_exception",
        |message: String| -> std::result::Result<Value, minijinja::Error> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
        },
    );
    env.add_function(
        "strftime_now",
        |format: String| -> std::result::Result<String, minijinja::Error> {
            use std::fmt::Write;
            let mut out = String::new();
            write!(out, "{}", chrono::Local::now().format(&format)).map_err(|_| {
                minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!("strftime_now: invalid format `{format}`"),
                )
            })?;
            Ok(out)
        },
    );
    env.add_filter("tojson", tojson);
    env
}

/// `tojson` as transformers defines it: Python's `json.dumps(x, ensure_ascii=False,
/// indent=indent, separators=separators, sort_keys=sort_keys)`.
fn tojson(value: Value, kwargs: Kwargs) -> std::result::Result<String, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let separators: Option<Vec<String>> = kwargs.get("separators")?;
    let _: Option<bool> = kwargs.get("ensure_ascii")?;
    kwargs.assert_all_used()?;
    let json = serde_json::to_value(&value)
        .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, format!("tojson: {e}")))?;
    let (item_sep, key_sep) = match separators.as_deref() {
        Some([item, key]) => (item.clone(), key.clone()),
        Some(_) => {
            return Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                "tojson: separators must be a pair",
            ))
        }
        None if indent.is_some() => (",".to_string(), ": ".to_string()),
        None => (", ".to_string(), ": ".to_string()),
    };
    let style = PyJson {
        indent,
        sort_keys: sort_keys.unwrap_or(false),
        item_sep,
        key_sep,
    };
    let mut out = String::new();
    style.write(&json, 0, &mut out);
    Ok(out)
}

struct PyJson {
    indent: Option<usize>,
    sort_keys: bool,
    item_sep: String,
    key_sep: String,
}

impl PyJson {
    fn newline(&self, depth: usize, out: &mut String) {
        if let Some(n) = self.indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
    }

    fn write(&self, v: &serde_json::Value, depth: usize, out: &mut String) {
        use serde_json::Value as J;
        match v {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Number(n) => out.push_str(&python_number(n)),
            J::String(s) => write_string(s, out),
            J::Array(items) if items.is_empty() => out.push_str("[]"),
            J::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(&self.item_sep);
                    }
                    self.newline(depth + 1, out);
                    self.write(item, depth + 1, out);
                }
                self.newline(depth, out);
                out.push(']');
            }
            J::Object(map) if map.is_empty() => out.push_str("{}"),
            J::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                if self.sort_keys {
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                }
                out.push('{');
                for (i, (k, item)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push_str(&self.item_sep);
                    }
                    self.newline(depth + 1, out);
                    write_string(k, out);
                    out.push_str(&self.key_sep);
                    self.write(item, depth + 1, out);
                }
                self.newline(depth, out);
                out.push('}');
            }
        }
    }
}

fn python_number(n: &serde_json::Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() && f.is_finite() && f == f.trunc() && f.abs() < 1e16 => {
            format!("{f:.1}")
        }
        _ => n.to_string(),
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The templates a model ships: `chat_template.jinja` (the default when present)
/// and tokenizer_config.json's `chat_template`, a string or a list of
/// `{name, template}` entries.
pub fn model_templates(
    tokenizer_config: &serde_json::Value,
    jinja_file: Option<&Path>,
) -> Result<BTreeMap<String, String>> {
    let mut templates = BTreeMap::new();
    match tokenizer_config.get("chat_template") {
        Some(serde_json::Value::String(s)) => {
            templates.insert("default".to_string(), s.clone());
        }
        Some(serde_json::Value::Array(items)) => {
            for item in items {
                if let (Some(name), Some(t)) = (
                    item.get("name").and_then(|v| v.as_str()),
                    item.get("template").and_then(|v| v.as_str()),
                ) {
                    templates.insert(name.to_string(), t.to_string());
                }
            }
        }
        _ => {}
    }
    if let Some(path) = jinja_file {
        templates.insert("default".to_string(), crate::error::read_to_string(path)?);
    }
    Ok(templates)
}

/// Picks the template for `--chat-template NAME|FILE`, or the model's default.
/// `Ok(None)` means the model has no template and none was asked for.
pub fn select(
    choice: Option<&str>,
    model: &BTreeMap<String, String>,
    model_name: &str,
) -> Result<Option<ChatTemplate>> {
    let Some(choice) = choice else {
        return Ok(model.get("default").map(|s| ChatTemplate {
            name: format!("{model_name} (model's own)"),
            source: s.clone(),
        }));
    };
    let path = Path::new(choice);
    if path.is_file() {
        return ChatTemplate::from_file(path).map(Some);
    }
    if let Some(t) = ChatTemplate::builtin(choice) {
        return Ok(Some(t));
    }
    if let Some(s) = model.get(choice) {
        return Ok(Some(ChatTemplate {
            name: format!("{model_name} ({choice})"),
            source: s.clone(),
        }));
    }
    let mut names: Vec<String> = BUILTIN_TEMPLATES
        .iter()
        .map(|(n, _, _)| n.to_string())
        .collect();
    names.extend(model.keys().map(|k| format!("{k} (from the model)")));
    Err(EngineError::option(
        crate::LoadSetting::ChatTemplate,
        format!(
            "`{choice}` is neither a file nor a known template; known: {}",
            names.join(", ")
        ),
    ))
}
