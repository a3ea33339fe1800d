//! The grid commands over `grid-api`: `chat` (sealed end to end by default; `--plain` is
//! labelled non-confidential), and `grid models | capacity | providers | pricing`.
//!
//! Keys: the grid takes the same `x402c_…` API keys and credits as the machines API
//! (`X402C_GRID_KEY`, else `COMPUTE_API_KEY`). Without a key, or with `--pay x402`, a chat is
//! paid per request with x402 from the wallet's keys, journaled like every payment.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::StreamExt as _;
use grid_api::chat::{ChatMeta, ChatOptions, ChatPay};
use grid_api::client::{ClientError, GridClient, GridKey};
use grid_api::openai::chat::CreateChatCompletionRequest;
use serde_json::{Value, json};
use x402_core::{Clock, UsdMicros};

use crate::SystemClock;

use crate::config::Config;
use crate::{Ui, exit};

/// How a chat is paid, on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum PayArg {
    /// Per request with x402 (priced from --max-tokens; what is not used stays as credits).
    X402,
    /// From the API key's prepaid credits.
    Credits,
}

/// `x402c chat`.
#[derive(Debug, clap::Args)]
pub(crate) struct Chat {
    /// The prompt, or `-` to read it from stdin.
    prompt: String,
    /// The model (default: the first the grid lists).
    #[arg(short, long)]
    model: Option<String>,
    /// Print the answer as it is written.
    #[arg(long)]
    stream: bool,
    /// Send in the clear: the grid's coordinator reads the prompt and the answer. NOT
    /// confidential.
    #[arg(long)]
    plain: bool,
    /// Seal to a node even when the grid gives no key binding for it: a coordinator could
    /// then swap in its own key and read the chat. A binding that fails is refused anyway.
    #[arg(long)]
    allow_unverified_node: bool,
    /// The most to pay, USD per 1M tokens, blended (input and output averaged).
    #[arg(long, value_name = "USD")]
    max_price_per_m: Option<String>,
    /// A system message.
    #[arg(long, value_name = "TEXT")]
    system: Option<String>,
    /// How to pay (default: credits with an API key, else x402).
    #[arg(long, value_enum)]
    pay: Option<PayArg>,
    /// The most tokens to write (prices an x402 chat).
    #[arg(long, default_value_t = 512)]
    max_tokens: u32,
    /// Sampling temperature, 0 to 2.
    #[arg(long)]
    temperature: Option<f32>,
    /// Pin a node.
    #[arg(long)]
    node: Option<String>,
}

/// `x402c grid …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum GridCommand {
    /// The models served, with node counts and prices.
    Models,
    /// Nodes: total, active, available, failures.
    Capacity,
    /// The nodes serving a model, cheapest first.
    Providers {
        /// The model.
        #[arg(long)]
        model: String,
    },
    /// Prices per model.
    Pricing,
}

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.trim().is_empty())
}

fn grid_url(config: &Config) -> Result<reqwest::Url> {
    config.grid_url.parse().with_context(|| {
        format!(
            "the grid URL `{}` is not a URL (--grid-url, X402C_GRID_URL)",
            config.grid_url
        )
    })
}

fn key() -> Option<GridKey> {
    env("X402C_GRID_KEY")
        .or_else(|| env("COMPUTE_API_KEY"))
        .map(GridKey::new)
}

fn client(config: &Config, key: Option<GridKey>) -> Result<GridClient> {
    // The key travels as X-API-Key too, which reqwest does not drop on a redirect: follow
    // none.
    let http = config
        .transport(Duration::from_secs(300))?
        .builder()?
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("cannot set up HTTP")?;
    Ok(GridClient::new(
        grid_url(config)?,
        http,
        key,
        Arc::new(crate::os_random),
    ))
}

/// The exit code for a grid error, with the error printed.
pub(crate) fn report(error: &anyhow::Error, json: bool) -> u8 {
    let code = match error.downcast_ref::<ClientError>() {
        Some(ClientError::PaymentRefused(_) | ClientError::Seal(_)) => exit::REFUSED,
        Some(ClientError::PaymentRequired(_) | ClientError::PaymentRejected { .. }) => {
            exit::REJECTED
        }
        Some(ClientError::PaymentPending { .. }) => exit::PENDING,
        Some(ClientError::Network(_) | ClientError::Server { .. } | ClientError::Stream(_)) => {
            exit::NETWORK
        }
        _ => exit::OTHER,
    };
    match json {
        true => eprintln!("{}", json!({ "error": format!("{error:#}"), "exit": code })),
        false => eprintln!("x402c: {error:#}"),
    }
    code
}

fn usd_per_m(text: &str) -> Result<UsdMicros> {
    text.trim()
        .trim_start_matches('$')
        .parse()
        .map_err(|e| anyhow::anyhow!("--max-price-per-m `{text}`: {e}"))
}

fn prompt(text: &str) -> Result<String> {
    if text != "-" {
        return Ok(text.to_owned());
    }
    let mut read = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut read)
        .context("cannot read the prompt from stdin")?;
    if read.trim().is_empty() {
        bail!("the prompt read from stdin is empty");
    }
    Ok(read)
}

/// The line on stderr saying how the chat went: sealed to whom, or in the clear.
fn provenance(meta: &ChatMeta, usage: Option<&grid_api::openai::chat::CompletionUsage>) -> String {
    let privacy = match (meta.confidential, meta.key_trust) {
        (true, Some(grid_api::reserve::KeyTrust::Verified)) => {
            "sealed end to end to the node's verified key".to_owned()
        }
        (true, _) => {
            "sealed to a key the grid did not bind to the node (--allow-unverified-node)".to_owned()
        }
        (false, _) => "PLAIN: not confidential, the grid read this chat".to_owned(),
    };
    let mut parts = vec![privacy];
    if let Some(node) = &meta.node_id {
        parts.push(format!(
            "node {node} ({})",
            meta.tee_type.as_deref().unwrap_or("tee unknown")
        ));
    }
    if let Some(usage) = usage {
        parts.push(format!(
            "{} prompt + {} completion tokens",
            usage.prompt_tokens, usage.completion_tokens
        ));
    }
    if let Some(job) = &meta.job_id {
        parts.push(format!("job {job}"));
    }
    if let Some(receipt) = &meta.receipt {
        parts.push(format!(
            "paid on {} ({})",
            receipt.network, receipt.transaction
        ));
    }
    parts.join(" · ")
}

/// `x402c chat`.
pub(crate) async fn chat(
    args: Chat,
    config: &Config,
    open: &dyn Fn() -> Result<Arc<crate::journal::SqliteJournal>>,
    ui: Ui,
) -> Result<u8> {
    let key = key();
    let pay = match (args.pay, key.is_some()) {
        (Some(PayArg::Credits), false) => bail!(
            "--pay credits needs an API key: set X402C_GRID_KEY or COMPUTE_API_KEY (x402c api-key create)"
        ),
        (Some(PayArg::Credits), true) | (None, true) => ChatPay::Credits,
        (Some(PayArg::X402), _) | (None, false) => ChatPay::X402,
    };
    // An x402 chat goes without the key, so the grid asks for payment.
    let mut client = client(config, if pay == ChatPay::X402 { None } else { key })?;
    if pay == ChatPay::X402 {
        let keys = crate::machines::keys(config)?;
        let http = config.transport(Duration::from_secs(300))?.client()?;
        let clock: Arc<dyn Clock + Send + Sync> = Arc::new(SystemClock);
        let Some(payer) = crate::machines::payer(config, &http, &clock, &keys)? else {
            bail!(
                "nothing to pay with: set an API key (X402C_GRID_KEY, COMPUTE_API_KEY) to pay from credits, or PRIVATE_KEY / SOLANA_SECRET_KEY / a keystore wallet to pay with x402"
            );
        };
        use std::io::IsTerminal as _;
        if !ui.yes && !std::io::stdin().is_terminal() {
            eprintln!(
                "x402c: paying per request with x402 without a terminal to ask: pass --yes to allow it"
            );
            return Ok(exit::REFUSED);
        }
        client = client.with_payments(grid_api::client::Payments {
            payer,
            journal: open()?,
            clock,
            config: x402_reqwest::Config {
                policy: x402_core::PaymentPolicy::default().usd_cap(Some(config.max_price)),
                daily_budget: config.daily_budget,
                ..x402_reqwest::Config::default()
            },
            before_sign: crate::machines::before_sign(ui),
        });
    }
    let model = match args.model {
        Some(model) => model,
        None => {
            let models = client.models().await?;
            let Some(first) = models.into_iter().next() else {
                bail!("the grid serves no model right now (x402c grid capacity)");
            };
            eprintln!("x402c: model {} (pick one with -m)", first.id);
            first.id
        }
    };
    let mut messages = Vec::new();
    if let Some(system) = &args.system {
        messages.push(json!({ "role": "system", "content": system }));
    }
    messages.push(json!({ "role": "user", "content": prompt(&args.prompt)? }));
    let mut request = json!({
        "model": model,
        "messages": messages,
        "max_completion_tokens": args.max_tokens,
    });
    if let Some(t) = args.temperature {
        if !(0.0..=2.0).contains(&t) {
            bail!("--temperature {t} is outside 0 to 2");
        }
        request["temperature"] = json!(t);
    }
    let request: CreateChatCompletionRequest =
        serde_json::from_value(request).context("cannot form the chat request")?;
    let options = ChatOptions {
        plain: args.plain,
        allow_unverified_node: args.allow_unverified_node,
        node: args.node,
        max_price_per_m: args.max_price_per_m.as_deref().map(usd_per_m).transpose()?,
        pay,
    };
    if args.plain {
        eprintln!("x402c: --plain: the grid's coordinator reads this prompt and its answer");
    } else if args.allow_unverified_node {
        eprintln!(
            "x402c: --allow-unverified-node: without the node's key binding a coordinator could read this chat"
        );
    }
    if !args.stream {
        let answer = client.chat(&request, &options).await?;
        if ui.json {
            let mut value = serde_json::to_value(&answer.response)?;
            value["x402c"] = meta_json(&answer.meta);
            say!("{value}");
        } else {
            let text = answer
                .response
                .choices
                .first()
                .and_then(|c| c.message.content.clone())
                .unwrap_or_default();
            say!("{text}");
            eprintln!(
                "x402c: {}",
                provenance(&answer.meta, answer.response.usage.as_ref())
            );
        }
        return Ok(0);
    }
    let mut stream = client.chat_stream(&request, &options).await?;
    let mut usage = None;
    let mut out = std::io::stdout().lock();
    while let Some(item) = stream.next().await {
        let chunk = match item {
            Ok(chunk) => chunk,
            Err(error) => {
                if !ui.json {
                    let _ = writeln!(out);
                }
                drop(out);
                return Err(anyhow::Error::new(error).context("the answer is incomplete"));
            }
        };
        if chunk.usage.is_some() {
            usage = chunk.usage.clone();
        }
        let written = match ui.json {
            true => writeln!(out, "{}", serde_json::to_string(&chunk)?),
            false => chunk
                .choices
                .iter()
                .filter_map(|c| c.delta.content.as_deref())
                .try_for_each(|text| out.write_all(text.as_bytes())),
        };
        if let Err(error) = written.and_then(|()| out.flush()) {
            if error.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(0);
            }
            bail!("cannot write the answer: {error}");
        }
    }
    if !ui.json {
        let _ = writeln!(out);
        drop(out);
        eprintln!("x402c: {}", provenance(&stream.meta, usage.as_ref()));
    }
    Ok(0)
}

fn meta_json(meta: &ChatMeta) -> Value {
    json!({
        "confidential": meta.confidential,
        "key_verified": meta.key_trust == Some(grid_api::reserve::KeyTrust::Verified),
        "node_id": meta.node_id,
        "tee_type": meta.tee_type,
        "job_id": meta.job_id,
        "receipt": meta.receipt,
    })
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `x402c grid …`.
pub(crate) async fn grid(command: GridCommand, config: &Config, ui: Ui) -> Result<u8> {
    let client = client(config, key())?;
    match command {
        GridCommand::Models => {
            let models = client.models().await?;
            if ui.json {
                say!("{}", serde_json::to_string(&models)?);
                return Ok(0);
            }
            let mut table =
                crate::machines::table(&["MODEL", "NODES", "TEE", "IN $/1K", "OUT $/1K"]);
            for model in &models {
                let pricing = model.sgl_pricing.clone().unwrap_or_default();
                table.add_row(vec![
                    model.id.clone(),
                    model
                        .sgl_node_count
                        .map_or_else(|| "-".into(), |n| n.to_string()),
                    model.sgl_tee_types.join(","),
                    text(&pricing["price_per_1k_input_tokens_usd"]),
                    text(&pricing["price_per_1k_output_tokens_usd"]),
                ]);
            }
            say!("{table}");
        }
        GridCommand::Capacity => {
            let capacity = client.capacity().await?;
            if ui.json {
                say!("{capacity}");
                return Ok(0);
            }
            for key in [
                "total_nodes",
                "active_nodes",
                "available_nodes",
                "at_capacity",
            ] {
                say!("{key:<16}{}", text(&capacity[key]));
            }
            if let Some(models) = capacity["models"].as_array() {
                let names: Vec<String> = models.iter().map(text).collect();
                say!("{:<16}{}", "models", names.join(", "));
            }
            if let Some(failures) = capacity["failures"].as_object() {
                let list: Vec<String> = failures
                    .iter()
                    .map(|(k, v)| format!("{k} {}", text(v)))
                    .collect();
                say!("{:<16}{}", "failures", list.join(", "));
            }
        }
        GridCommand::Providers { model } => {
            let providers = client.providers(&model).await?;
            if ui.json {
                say!("{}", serde_json::to_string(&providers)?);
                return Ok(0);
            }
            let mut table = crate::machines::table(&[
                "NODE",
                "IN $/1M",
                "OUT $/1M",
                "BLENDED $/1K",
                "TEE",
                "ONLINE",
            ]);
            for p in &providers {
                table.add_row(vec![
                    p.node_id.clone(),
                    text(p.input_per_m.as_ref().unwrap_or(&Value::Null)),
                    text(p.output_per_m.as_ref().unwrap_or(&Value::Null)),
                    text(p.blended_per_1k.as_ref().unwrap_or(&Value::Null)),
                    p.tee_type.clone().unwrap_or_else(|| "-".into()),
                    p.online.map_or_else(|| "-".into(), |o| o.to_string()),
                ]);
            }
            say!("{table}");
        }
        GridCommand::Pricing => {
            let pricing = client.pricing().await?;
            if ui.json {
                say!("{pricing}");
                return Ok(0);
            }
            let mut table = crate::machines::table(&["MODEL", "IN $/1K", "OUT $/1K"]);
            for row in pricing["pricing"].as_array().into_iter().flatten() {
                table.add_row(vec![
                    text(&row["model"]),
                    text(&row["price_per_1k_input_tokens_usd"]),
                    text(&row["price_per_1k_output_tokens_usd"]),
                ]);
            }
            say!("{table}");
        }
    }
    Ok(0)
}
