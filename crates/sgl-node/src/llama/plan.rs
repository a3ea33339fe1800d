//! From the operator's flags and the machine's facts to the engine's command line, slots and
//! supervision: what `sgl start` runs and what `sgl service install` writes, decided in one
//! place.

use std::path::{Path, PathBuf};

use super::preset::{self, Preset};
use super::process::{ServerCommand, SpawnLauncher};
use super::supervisor::{LlamaServer, Supervision};
use crate::hardware::Hardware;
use crate::{Error, Result};

/// What the operator asked for (`sgl start`'s engine flags).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EngineOptions {
    /// The GGUF file.
    pub model_path: PathBuf,
    /// The advertised name; the file's stem when `None`.
    pub model_name: Option<String>,
    /// The llama-server binary ([`super::find_llama_server`]).
    pub llama_server: PathBuf,
    /// The loopback port to try first.
    pub port: u16,
    /// `--resource-percent`, 1..=100.
    pub resource_percent: u8,
    /// `--threads`.
    pub threads: Option<u32>,
    /// `--gpu-layers`.
    pub gpu_layers: Option<u32>,
    /// Tokens per slot.
    pub context: u32,
    /// `-b`.
    pub batch: u32,
    /// `--max-jobs`: 1 is automatic, above 1 caps the slots.
    pub max_jobs: u32,
}

impl EngineOptions {
    /// The reference's defaults for `model_path` served by `llama_server`.
    pub fn new(model_path: PathBuf, llama_server: PathBuf) -> EngineOptions {
        EngineOptions {
            model_path,
            model_name: None,
            llama_server,
            port: 8081,
            resource_percent: 100,
            threads: None,
            gpu_layers: None,
            context: preset::DEFAULT_CONTEXT,
            batch: preset::DEFAULT_BATCH,
            max_jobs: 1,
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Plan {
    /// The command line.
    pub command: ServerCommand,
    /// The slots: llama-server's `--parallel` and the advertised `max_concurrent_jobs`.
    pub slots: u32,
    /// The GGUF's size.
    pub model_bytes: u64,
    /// The supervision, with the wedge threshold for this model's size.
    pub supervision: Supervision,
}

impl LlamaServer {
    /// Starts supervising a real `llama-server` run as `plan` says (see [`LlamaServer::start`]).
    pub fn spawn(plan: &Plan) -> LlamaServer {
        let launcher = SpawnLauncher::new(plan.command.clone());
        let drained = launcher.drained();
        LlamaServer::start(
            plan.command.model_name.clone(),
            plan.command.context,
            Box::new(launcher),
            plan.supervision,
            Some(drained),
        )
    }
}

/// The model name a GGUF path gives: its file stem.
pub fn model_name(path: &Path) -> Option<String> {
    path.file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .filter(|stem| !stem.is_empty())
}

/// Plans the engine for `options` on `hardware`.
///
/// # Errors
/// [`Error::InvalidInput`] when the model is not a readable file or has no usable name.
pub fn plan(options: &EngineOptions, hardware: &Hardware) -> Result<Plan> {
    let metadata = std::fs::metadata(&options.model_path).map_err(|e| {
        Error::InvalidInput(format!(
            "cannot read the model {}: {e}; give --model-path a GGUF file",
            options.model_path.display()
        ))
    })?;
    if !metadata.is_file() {
        return Err(Error::InvalidInput(format!(
            "the model {} is not a file; give --model-path a GGUF file",
            options.model_path.display()
        )));
    }
    let model_name = match &options.model_name {
        Some(name) if !name.trim().is_empty() => name.trim().to_owned(),
        Some(_) => return Err(Error::InvalidInput("--model-name is empty".into())),
        None => model_name(&options.model_path).ok_or_else(|| {
            Error::InvalidInput("the model file has no name to advertise; give --model-name".into())
        })?,
    };
    let model_bytes = metadata.len();
    let preset = Preset::new(
        options.resource_percent,
        hardware.cpu_cores,
        options.threads,
        options.gpu_layers,
    );
    let slots = preset::slots(
        hardware.memory_bytes,
        Some(model_bytes),
        options.context,
        options.max_jobs,
    );
    let supervision = Supervision {
        wedge_after: preset::wedge_after(Some(model_bytes)),
        ..Supervision::default()
    };
    Ok(Plan {
        command: ServerCommand {
            binary: options.llama_server.clone(),
            model_path: options.model_path.clone(),
            model_name,
            port: options.port,
            context: options.context,
            slots,
            threads: preset.threads,
            gpu_layers: preset.gpu_layers,
            batch: options.batch,
            env: Vec::new(),
        },
        slots,
        model_bytes,
        supervision,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn machine(cores: u32, gb: u64) -> Hardware {
        let mut hardware = Hardware::detect();
        hardware.cpu_cores = cores;
        hardware.memory_bytes = gb * 1_000_000_000;
        hardware
    }

    #[test]
    fn the_plan_follows_the_flags_and_the_machine() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("SmolLM2-135M-Instruct.Q4_1.gguf");
        std::fs::write(&model, vec![0u8; 1000]).unwrap();
        let mut options = EngineOptions::new(model.clone(), "/opt/sgl/bin/llama-server".into());
        let plan = plan(&options, &machine(8, 64)).unwrap();
        assert_eq!(plan.command.model_name, "SmolLM2-135M-Instruct.Q4_1");
        assert_eq!((plan.slots, plan.command.slots), (2, 2));
        assert_eq!((plan.command.threads, plan.command.gpu_layers), (8, 99));
        assert_eq!(plan.model_bytes, 1000);
        assert_eq!(plan.supervision.wedge_after.as_secs(), 600);

        options.resource_percent = 25;
        options.model_name = Some(" smol ".into());
        let small = super::plan(&options, &machine(8, 8)).unwrap();
        assert_eq!(small.command.model_name, "smol");
        assert_eq!((small.slots, small.command.threads), (1, 2));
        assert_eq!(small.command.gpu_layers, 25);

        options.model_name = Some(String::new());
        assert!(super::plan(&options, &machine(8, 8)).is_err());
        options.model_name = None;
        options.model_path = dir.path().join("missing.gguf");
        let error = super::plan(&options, &machine(8, 8)).unwrap_err();
        assert!(error.to_string().contains("--model-path"), "{error}");
        options.model_path = dir.path().to_path_buf();
        assert!(super::plan(&options, &machine(8, 8)).is_err());
    }
}
