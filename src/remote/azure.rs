//! Azure Blob Storage through the official SDK (`azure_storage_blob` 1.x). Conditions map to
//! `If-None-Match: *` and `If-Match: <etag>`; 409/412 answers become [`RemoteError::Conflict`].
//!
//! Retries have one budget, here ([`AzureRemote::retrying`]); the SDK's own retry policy is off and
//! the layers above do not retry again. Failures retrying can fix (5xx, 408, 429, a connection
//! reset or timed out) are retried with backoff for up to [`BUDGET`]; failures it rarely fixes
//! (connection refused, a host name that does not resolve) get one more try; a refusal by the
//! service (denied, not found, conflict) none. An attempt that gets no complete answer within
//! `[remote] timeout_seconds` (a stalled connection) is abandoned and counts as one that retrying
//! can fix. The final message says what was tried.

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::error::ErrorKind;
use azure_core::http::{ClientOptions, Etag, RequestContent, RetryOptions, StatusCode};
use azure_storage_blob::models::{
    BlobClientDeleteOptions, BlobClientUploadOptions, BlobContainerClientListBlobsOptions,
};
use azure_storage_blob::{BlobContainerClient, BlobContainerClientOptions};
use futures::TryStreamExt as _;

use super::auth::{Credential, Endpoint, redact};
use super::backend::{BlobInfo, Page, PutMode, Remote, RemoteError, RemoteResult};
use crate::sanitize::for_terminal;

const PAGE_SIZE: i32 = 5000;

/// How long one operation may keep retrying failures that retrying can fix.
pub const BUDGET: std::time::Duration = std::time::Duration::from_secs(30);
/// The wait before the one extra try of a failure retrying rarely fixes.
const HOPELESS_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

/// What a failed request says about trying it again.
#[derive(Debug, Clone, PartialEq)]
enum Retry {
    /// The service or the network failed in passing: try again within the budget.
    Transient,
    /// Nothing listens there, or the name does not resolve: one more try, then say so.
    Hopeless(&'static str),
    /// The service answered and refused: trying again gives the same answer.
    Never,
}

fn classify(e: &azure_core::Error) -> Retry {
    match e.kind() {
        ErrorKind::HttpResponse { status, .. } => {
            let s = u16::from(*status);
            if s >= 500
                || *status == StatusCode::RequestTimeout
                || *status == StatusCode::TooManyRequests
            {
                Retry::Transient
            } else {
                Retry::Never
            }
        }
        ErrorKind::Io | ErrorKind::Connection => {
            let mut text = String::new();
            let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
            while let Some(err) = cur {
                if let Some(io) = err.downcast_ref::<std::io::Error>()
                    && io.kind() == std::io::ErrorKind::ConnectionRefused
                {
                    return Retry::Hopeless("connection refused: nothing listens at that address");
                }
                text.push_str(&err.to_string().to_ascii_lowercase());
                text.push(' ');
                cur = err.source();
            }
            if text.contains("connection refused") {
                Retry::Hopeless("connection refused: nothing listens at that address")
            } else if text.contains("dns error")
                || text.contains("failed to lookup address")
                || text.contains("name or service not known")
                || text.contains("no such host")
            {
                Retry::Hopeless("the host name does not resolve")
            } else {
                Retry::Transient
            }
        }
        _ => Retry::Never,
    }
}

pub struct AzureRemote {
    client: BlobContainerClient,
    /// `ACCOUNT/CONTAINER` style name for messages: no query, so no SAS.
    shown: String,
    /// How long one attempt (request and whole answer) may take.
    attempt_timeout: std::time::Duration,
}

impl AzureRemote {
    pub fn new(
        endpoint: &Endpoint,
        container: &str,
        credential: &Credential,
        attempt_timeout: std::time::Duration,
    ) -> Result<AzureRemote, RemoteError> {
        let (sas, token) = match credential {
            Credential::Sas(q) => (Some(q.as_str()), None),
            Credential::Token(t) => (None, Some(t.clone())),
        };
        let url = endpoint.container_url(container, sas);
        let mut shown = endpoint.container_url(container, None);
        shown.set_query(None);
        let shown = for_terminal(shown.as_str());
        let options = BlobContainerClientOptions {
            client_options: ClientOptions {
                // The one retry budget is `retrying`.
                retry: RetryOptions::none(),
                ..ClientOptions::default()
            },
            ..BlobContainerClientOptions::default()
        };
        let client = BlobContainerClient::new(url, token, Some(options)).map_err(|e| {
            RemoteError::Other {
                what: shown.clone(),
                msg: redact(&e.to_string()),
            }
        })?;
        Ok(AzureRemote {
            client,
            shown,
            attempt_timeout,
        })
    }

    fn what(&self, name: &str) -> String {
        if name.is_empty() {
            self.shown.clone()
        } else {
            format!("{}/{}", self.shown, for_terminal(name))
        }
    }

    /// Runs `op` within the retry budget (see the module comment); the error says what was tried.
    async fn retrying<T, F, Fut>(&self, name: &str, mut op: F) -> RemoteResult<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = azure_core::Result<T>>,
    {
        let start = std::time::Instant::now();
        let mut delay = std::time::Duration::from_millis(200);
        let mut attempts = 1u32;
        loop {
            let e = match tokio::time::timeout(self.attempt_timeout, op()).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => e,
                Err(_) => azure_core::Error::with_message(
                    ErrorKind::Io,
                    format!(
                        "no complete answer within {} s (`[remote] timeout_seconds`)",
                        self.attempt_timeout.as_secs_f64()
                    ),
                ),
            };
            let class = classify(&e);
            let wait = match class {
                Retry::Transient if start.elapsed() + delay < BUDGET => Some(delay),
                Retry::Hopeless(_) if attempts < 2 => Some(HOPELESS_RETRY),
                _ => None,
            };
            let Some(wait) = wait else {
                let mut err = self.map_err(name, e);
                if let (RemoteError::Unreachable { msg, .. }, false) =
                    (&mut err, class == Retry::Never)
                {
                    if let Retry::Hopeless(why) = class {
                        *msg = format!("{why}; {msg}");
                    }
                    msg.push_str(&format!(
                        "; tried {attempts} time{} over {:.1} s",
                        if attempts == 1 { "" } else { "s" },
                        start.elapsed().as_secs_f64()
                    ));
                }
                return Err(err);
            };
            tracing::debug!(
                "{}: attempt {attempts} failed, retrying in {} ms: {}",
                self.what(name),
                wait.as_millis(),
                redact(&e.to_string())
            );
            tokio::time::sleep(wait).await;
            delay = (delay * 2).min(std::time::Duration::from_secs(4));
            attempts += 1;
        }
    }

    fn map_err(&self, name: &str, e: azure_core::Error) -> RemoteError {
        let what = self.what(name);
        let first_line = |s: String| s.lines().next().unwrap_or_default().to_string();
        match e.kind() {
            ErrorKind::HttpResponse {
                status, error_code, ..
            } => {
                let code = error_code.clone().unwrap_or_default();
                let msg = redact(&format!("HTTP {} {code}", u16::from(*status)));
                match *status {
                    StatusCode::NotFound if code == "ContainerNotFound" => {
                        RemoteError::NoContainer { what, msg }
                    }
                    StatusCode::NotFound => RemoteError::NotFound(what),
                    StatusCode::Conflict | StatusCode::PreconditionFailed => {
                        RemoteError::Conflict(what)
                    }
                    StatusCode::Forbidden | StatusCode::Unauthorized => {
                        RemoteError::Denied { what, msg }
                    }
                    s if u16::from(s) >= 500
                        || s == StatusCode::RequestTimeout
                        || s == StatusCode::TooManyRequests =>
                    {
                        RemoteError::Unreachable { what, msg }
                    }
                    _ => RemoteError::Other { what, msg },
                }
            }
            ErrorKind::Io | ErrorKind::Connection => RemoteError::Unreachable {
                what,
                msg: first_line(redact(&e.to_string())),
            },
            _ => RemoteError::Other {
                what,
                msg: first_line(redact(&e.to_string())),
            },
        }
    }
}

#[async_trait]
impl Remote for AzureRemote {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    async fn ensure_exists(&self) -> RemoteResult<()> {
        match self.retrying("", || self.client.create(None)).await {
            Ok(_) | Err(RemoteError::Conflict(_)) => Ok(()),
            Err(other) => Err(other),
        }
    }

    async fn list_page(&self, prefix: &str, marker: Option<String>) -> RemoteResult<Page> {
        let model = self
            .retrying("", || async {
                let options = BlobContainerClientListBlobsOptions {
                    prefix: (!prefix.is_empty()).then(|| prefix.to_string()),
                    marker: marker.clone(),
                    maxresults: Some(PAGE_SIZE),
                    ..Default::default()
                };
                let mut pages = self.client.list_blobs(Some(options))?.into_pages();
                match pages.try_next().await? {
                    Some(page) => page.into_model().map(Some),
                    None => Ok(None),
                }
            })
            .await?;
        let Some(model) = model else {
            return Ok(Page::default());
        };
        let items = model
            .blob_items
            .into_iter()
            .filter_map(|b| {
                let name = b.name?;
                let props = b.properties.unwrap_or_default();
                Some(BlobInfo {
                    name,
                    etag: props.etag.map(|e| e.to_string()).unwrap_or_default(),
                    size: props.content_length.unwrap_or(0),
                    modified_ms: props
                        .last_modified
                        .map_or(0, |t| (t.unix_timestamp_nanos() / 1_000_000) as i64),
                })
            })
            .collect();
        Ok(Page {
            items,
            next: model.next_marker.filter(|m| !m.is_empty()),
        })
    }

    async fn get(&self, name: &str) -> RemoteResult<(Vec<u8>, String)> {
        let blob = self.client.blob_client(name);
        self.retrying(name, || async {
            let r = blob.download(None).await?;
            let etag = r
                .properties
                .etag
                .as_ref()
                .map(|e| e.to_string())
                .unwrap_or_default();
            let body = r.body.collect().await?;
            Ok((body.to_vec(), etag))
        })
        .await
    }

    async fn put(&self, name: &str, data: Vec<u8>, mode: PutMode) -> RemoteResult<String> {
        let blob = self.client.blob_client(name);
        let data = azure_core::Bytes::from(data);
        self.retrying(name, || async {
            let mut options = BlobClientUploadOptions::default();
            match &mode {
                PutMode::Overwrite => {}
                PutMode::Create => options.if_none_match = Some(Etag::from("*")),
                PutMode::IfMatch(etag) => options.if_match = Some(Etag::from(etag.as_str())),
            }
            let content: RequestContent<_, _> = data.clone().into();
            let r = blob.upload(content, Some(options)).await?;
            Ok(r.etag.map(|e| e.to_string()).unwrap_or_default())
        })
        .await
    }

    async fn delete(&self, name: &str, if_match: Option<&str>) -> RemoteResult<()> {
        let blob = self.client.blob_client(name);
        self.retrying(name, || async {
            let options = BlobClientDeleteOptions {
                if_match: if_match.map(Etag::from),
                ..Default::default()
            };
            blob.delete(Some(options)).await.map(|_| ())
        })
        .await
    }
}

type SharedRemote = Arc<dyn Remote>;

/// Both containers of a project on Azure.
pub fn open_pair(
    endpoint: &Endpoint,
    images: &str,
    labels: &str,
    credential: &Credential,
    attempt_timeout: std::time::Duration,
) -> Result<(SharedRemote, SharedRemote), RemoteError> {
    Ok((
        Arc::new(AzureRemote::new(
            endpoint,
            images,
            credential,
            attempt_timeout,
        )?),
        Arc::new(AzureRemote::new(
            endpoint,
            labels,
            credential,
            attempt_timeout,
        )?),
    ))
}
