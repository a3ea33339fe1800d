//! Embeddings (`POST /v1/embeddings`), asynchronous jobs (`/grid/jobs`) and a job's
//! attestation (`/grid/jobs/{id}/attestation`), which this client checks itself: the node's
//! ed25519 signature over the result it posted (`sgl-result-v1`, §3.9).
//!
//! Embeddings are never sealed by the client (the reference's rule: the coordinator reads
//! them); they are routed to nodes that offer them, an extension of ours (the reference node
//! has no embeddings).

use async_openai::types::embeddings::{CreateEmbeddingRequest, CreateEmbeddingResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{ClientError, GridClient};

/// A job as `/grid/jobs` reports it. Unknown fields are kept in `other`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Its id.
    pub job_id: String,
    /// `queued`, `running`, `completed`, `failed`.
    pub status: String,
    /// The model.
    #[serde(default)]
    pub model: Option<String>,
    /// The node it runs on.
    #[serde(default)]
    pub node_id: Option<String>,
    /// The node's TEE type.
    #[serde(default)]
    pub tee_type: Option<String>,
    /// Token counts, once done.
    #[serde(default)]
    pub usage: Option<grid_proto::Usage>,
    /// What it cost, USD (decimal text or number as the grid writes it).
    #[serde(default)]
    pub cost_usd: Option<Value>,
    /// The result, once completed.
    #[serde(default)]
    pub result: Option<Value>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// A job's attestation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobAttestation {
    /// The node.
    pub node_id: String,
    /// Its TEE type, as it reported it (`none`: no hardware root of trust).
    #[serde(default)]
    pub tee_type: Option<String>,
    /// The job.
    pub job_id: String,
    /// The node's signature over its result (base58).
    pub attestation_signature: String,
    /// What the signature covers: `plain`, `sealed` or `stream:N:1`.
    #[serde(default)]
    pub result_kind: Option<String>,
    /// Hex SHA-256 of the signed result.
    #[serde(default)]
    pub result_sha256: Option<String>,
    /// The node's ed25519 key (base58).
    #[serde(default)]
    pub node_public_key: Option<String>,
    /// The node's signed hardware report, when it sent one.
    #[serde(default)]
    pub attestation_report: Option<Value>,
    /// Whether the coordinator verified the signature (its word).
    #[serde(default)]
    pub verified: bool,
    /// When.
    #[serde(default)]
    pub verified_at: Option<String>,
}

impl JobAttestation {
    /// Checks the node's signature ourselves rather than trusting `verified`.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] naming what is missing or wrong.
    pub fn verify(&self) -> Result<(), ClientError> {
        let (Some(kind), Some(digest), Some(key)) = (
            &self.result_kind,
            &self.result_sha256,
            &self.node_public_key,
        ) else {
            return Err(ClientError::Invalid(
                "the attestation names no result kind, digest or node key to check".into(),
            ));
        };
        let message = format!("sgl-result-v1\n{}\n{kind}\n{digest}", self.job_id);
        grid_proto::envelope::verify(
            key,
            &self.attestation_signature,
            message.as_bytes(),
            "result",
        )
        .map_err(|e| ClientError::Invalid(format!("the job's attestation does not hold: {e}")))
    }
}

/// What to run as a job.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JobRequest {
    /// The model.
    pub model: String,
    /// A prompt, or OpenAI messages.
    pub input: Value,
}

impl GridClient {
    /// Embeddings, in OpenAI's shape.
    ///
    /// # Errors
    /// [`ClientError`]; a grid without nodes offering embeddings refuses with 404/503.
    pub async fn embeddings(
        &self,
        request: &CreateEmbeddingRequest,
    ) -> Result<CreateEmbeddingResponse, ClientError> {
        Self::read(
            self.request(reqwest::Method::POST, "/v1/embeddings")?
                .json(request),
        )
        .await
    }

    /// Submits a job.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn submit_job(&self, job: &JobRequest) -> Result<Job, ClientError> {
        Self::read(self.request(reqwest::Method::POST, "/grid/jobs")?.json(job)).await
    }

    /// A job's state.
    ///
    /// # Errors
    /// [`ClientError`] (`Refused` 404 for an unknown id).
    pub async fn job(&self, id: &str) -> Result<Job, ClientError> {
        Self::read(self.request(reqwest::Method::GET, &job_path(id, "")?)?).await
    }

    /// A job's attestation (check it with [`JobAttestation::verify`]).
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn job_attestation(&self, id: &str) -> Result<JobAttestation, ClientError> {
        let attestation: JobAttestation =
            Self::read(self.request(reqwest::Method::GET, &job_path(id, "/attestation")?)?).await?;
        // The signature covers the job id it names: it must be the one asked about.
        if attestation.job_id != id {
            return Err(ClientError::Invalid(format!(
                "asked for job {id}'s attestation, the grid answered job {}'s",
                attestation.job_id.chars().take(64).collect::<String>()
            )));
        }
        Ok(attestation)
    }
}

/// `/grid/jobs/{id}{tail}`, refusing an id that would leave the path.
fn job_path(id: &str, tail: &str) -> Result<String, ClientError> {
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ClientError::Invalid(format!(
            "`{}` is not a job id (letters, digits, - and _)",
            id.chars().take(64).collect::<String>()
        )));
    }
    Ok(format!("/grid/jobs/{id}{tail}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use grid_proto::envelope::{ResultKind, public_key, sign_result};

    use super::*;

    #[test]
    fn an_attestation_is_checked_against_the_nodes_key() {
        let seed = [9u8; 32];
        let payload = br#"{"content":"hi"}"#;
        let digest = {
            use std::fmt::Write as _;
            let mut hex = String::new();
            for b in <sha2::Sha256 as sha2::Digest>::digest(payload) {
                let _ = write!(hex, "{b:02x}");
            }
            hex
        };
        let mut attestation = JobAttestation {
            node_id: "n".into(),
            tee_type: Some("none".into()),
            job_id: "job1".into(),
            attestation_signature: sign_result(&seed, "job1", ResultKind::Plain, payload),
            result_kind: Some("plain".into()),
            result_sha256: Some(digest),
            node_public_key: Some(public_key(&seed)),
            attestation_report: None,
            verified: true,
            verified_at: None,
        };
        attestation.verify().unwrap();
        attestation.job_id = "job2".into();
        assert!(attestation.verify().is_err());
        attestation.job_id = "job1".into();
        attestation.node_public_key = Some(public_key(&[1; 32]));
        assert!(attestation.verify().is_err());
    }

    #[test]
    fn job_ids_stay_in_their_path() {
        assert_eq!(job_path("abc-1", "").unwrap(), "/grid/jobs/abc-1");
        assert!(job_path("../x", "").is_err());
        assert!(job_path("", "").is_err());
    }
}
