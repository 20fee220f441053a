//! Azure Blob Storage through the official SDK (`azure_storage_blob` 1.x). Conditions map to
//! `If-None-Match: *` and `If-Match: <etag>`; 409/412 answers become [`RemoteError::Conflict`].
//! The SDK's pipeline retries 408/429/5xx and connection failures with exponential backoff.

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::error::ErrorKind;
use azure_core::http::{
    ClientOptions, Etag, ExponentialRetryOptions, RequestContent, RetryOptions, StatusCode,
};
use azure_storage_blob::models::{
    BlobClientDeleteOptions, BlobClientUploadOptions, BlobContainerClientListBlobsOptions,
};
use azure_storage_blob::{BlobContainerClient, BlobContainerClientOptions};
use futures::TryStreamExt as _;

use super::auth::{Credential, Endpoint, redact};
use super::backend::{BlobInfo, Page, PutMode, Remote, RemoteError, RemoteResult};
use crate::sanitize::for_terminal;

const PAGE_SIZE: i32 = 5000;

pub struct AzureRemote {
    client: BlobContainerClient,
    /// `ACCOUNT/CONTAINER` style name for messages: no query, so no SAS.
    shown: String,
}

impl AzureRemote {
    pub fn new(
        endpoint: &Endpoint,
        container: &str,
        credential: &Credential,
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
                retry: RetryOptions::exponential(ExponentialRetryOptions {
                    initial_delay: azure_core::time::Duration::milliseconds(200),
                    max_retries: 6,
                    max_total_elapsed: azure_core::time::Duration::seconds(30),
                    max_delay: azure_core::time::Duration::seconds(4),
                }),
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
        Ok(AzureRemote { client, shown })
    }

    fn what(&self, name: &str) -> String {
        if name.is_empty() {
            self.shown.clone()
        } else {
            format!("{}/{}", self.shown, for_terminal(name))
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
        match self.client.create(None).await {
            Ok(_) => Ok(()),
            Err(e) => match self.map_err("", e) {
                RemoteError::Conflict(_) => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn list_page(&self, prefix: &str, marker: Option<String>) -> RemoteResult<Page> {
        let options = BlobContainerClientListBlobsOptions {
            prefix: (!prefix.is_empty()).then(|| prefix.to_string()),
            marker,
            maxresults: Some(PAGE_SIZE),
            ..Default::default()
        };
        let mut pages = self
            .client
            .list_blobs(Some(options))
            .map_err(|e| self.map_err("", e))?
            .into_pages();
        let Some(page) = pages.try_next().await.map_err(|e| self.map_err("", e))? else {
            return Ok(Page::default());
        };
        let model = page.into_model().map_err(|e| self.map_err("", e))?;
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
        let r = blob
            .download(None)
            .await
            .map_err(|e| self.map_err(name, e))?;
        let etag = r
            .properties
            .etag
            .as_ref()
            .map(|e| e.to_string())
            .unwrap_or_default();
        let body = r.body.collect().await.map_err(|e| self.map_err(name, e))?;
        Ok((body.to_vec(), etag))
    }

    async fn put(&self, name: &str, data: Vec<u8>, mode: PutMode) -> RemoteResult<String> {
        let blob = self.client.blob_client(name);
        let mut options = BlobClientUploadOptions::default();
        match &mode {
            PutMode::Overwrite => {}
            PutMode::Create => options.if_none_match = Some(Etag::from("*")),
            PutMode::IfMatch(etag) => options.if_match = Some(Etag::from(etag.as_str())),
        }
        let content: RequestContent<_, _> = azure_core::Bytes::from(data).into();
        let r = blob
            .upload(content, Some(options))
            .await
            .map_err(|e| self.map_err(name, e))?;
        Ok(r.etag.map(|e| e.to_string()).unwrap_or_default())
    }

    async fn delete(&self, name: &str, if_match: Option<&str>) -> RemoteResult<()> {
        let blob = self.client.blob_client(name);
        let options = BlobClientDeleteOptions {
            if_match: if_match.map(Etag::from),
            ..Default::default()
        };
        blob.delete(Some(options))
            .await
            .map(|_| ())
            .map_err(|e| self.map_err(name, e))
    }
}

type SharedRemote = Arc<dyn Remote>;

/// Both containers of a project on Azure.
pub fn open_pair(
    endpoint: &Endpoint,
    images: &str,
    labels: &str,
    credential: &Credential,
) -> Result<(SharedRemote, SharedRemote), RemoteError> {
    Ok((
        Arc::new(AzureRemote::new(endpoint, images, credential)?),
        Arc::new(AzureRemote::new(endpoint, labels, credential)?),
    ))
}
