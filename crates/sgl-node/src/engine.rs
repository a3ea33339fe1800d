//! The inference engine seam: what the runtime needs from a model server. The llama.cpp
//! engines implement it (next); tests implement it with a scripted engine of their own.

use std::pin::Pin;

use futures_util::Stream;
use grid_proto::Usage;
use grid_proto::node::ChatRequest;

use crate::{Error, Result};

/// A whole answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The text.
    pub content: String,
    /// Token counts.
    pub usage: Usage,
}

/// One event of a streamed answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamEvent {
    /// A decoded piece of text (one token, as llama.cpp streams them).
    Delta(String),
    /// The answer is complete, with its token counts. A stream that ends without `Done` was
    /// cut short (the runtime fails the job).
    Done(Usage),
}

/// A streamed answer. Dropping it cancels the generation.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<StreamEvent>> + Send>>;

/// A model server the node runs jobs on. Object-safe (`Arc<dyn Engine>`).
#[async_trait::async_trait]
pub trait Engine: Send + Sync {
    /// The model name advertised (`available_models`).
    fn model(&self) -> String;

    /// Whether the engine can take jobs now; the model is advertised only while it can.
    async fn healthy(&self) -> bool;

    /// Context per slot, in tokens (`capabilities.context_size`).
    fn context_size(&self) -> u32;

    /// Runs a chat request to the end.
    ///
    /// # Errors
    /// [`Error::Engine`].
    async fn chat(&self, request: &ChatRequest) -> Result<Completion>;

    /// Runs a chat request as a stream of deltas ending with [`StreamEvent::Done`].
    ///
    /// # Errors
    /// [`Error::Engine`] when it cannot start; errors inside the stream when it breaks.
    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream>;

    /// How many tokens `text` is for this model.
    ///
    /// # Errors
    /// [`Error::Engine`].
    async fn count_tokens(&self, text: &str) -> Result<u64>;

    /// Whether [`Engine::embeddings`] works (`capabilities.embeddings`).
    fn supports_embeddings(&self) -> bool {
        false
    }

    /// One vector per input, in order, with the tokens read.
    ///
    /// # Errors
    /// [`Error::Unsupported`] unless the engine supports embeddings.
    async fn embeddings(&self, inputs: &[String]) -> Result<(Vec<Vec<f32>>, Usage)> {
        let _ = inputs;
        Err(Error::Unsupported(format!(
            "{} serves no embeddings",
            self.model()
        )))
    }
}
