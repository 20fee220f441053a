//! Credentials for Azure Blob Storage, and the redaction that keeps them off the screen.
//!
//! Order: a SAS (`AZURE_STORAGE_SAS_URL`, or the file named by `[remote] sas_file`), a
//! connection string (`AZURE_STORAGE_CONNECTION_STRING`), an account name and key
//! (`AZURE_STORAGE_ACCOUNT` + `AZURE_STORAGE_KEY`), else Entra ID (workload identity when its
//! variables are set, managed identity when `AZURE_CLIENT_ID`/`IDENTITY_ENDPOINT` say so, else the
//! Azure CLI / azd login). With a key termtag signs its own short-lived account SAS (HMAC-SHA256),
//! because the SDK has no shared-key authentication; the key itself never leaves this module.

use std::path::Path;
use std::sync::{Arc, Mutex};

use azure_core::credentials::TokenCredential;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::OffsetDateTime;
use url::Url;

/// The storage service version termtag signs SAS tokens for.
pub const SAS_VERSION: &str = "2022-11-02";
/// How long a self-signed SAS is valid: long enough for a big push, short if it leaks.
pub const SAS_LIFETIME: time::Duration = time::Duration::hours(8);

/// Secrets seen in this process, so that [`redact`] can remove them even where they appear
/// outside a `sig=` parameter.
static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

pub fn register_secret(s: &str) {
    if s.len() >= 8
        && let Ok(mut v) = SECRETS.lock()
        && !v.iter().any(|k| k == s)
    {
        v.push(s.to_string());
    }
}

/// Removes secrets from `s`: values of `sig=`, `AccountKey=`, `SharedAccessSignature=`
/// and any registered secret (an SDK error may quote a URL with its SAS query).
pub fn redact(s: &str) -> String {
    let mut out = s.to_string();
    if let Ok(v) = SECRETS.lock() {
        for secret in v.iter() {
            out = out.replace(secret.as_str(), "REDACTED");
            // The same secret as it appears percent-encoded in a URL.
            let enc: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
            if enc != *secret {
                out = out.replace(&enc, "REDACTED");
            }
        }
    }
    for key in ["sig=", "accountkey=", "sharedaccesssignature="] {
        out = redact_after(&out, key);
    }
    out
}

/// Replaces what follows each (case-insensitive) `key` up to a delimiter with `REDACTED`.
fn redact_after(s: &str, key: &str) -> String {
    let lower = s.to_ascii_lowercase();
    let mut out = String::with_capacity(s.len());
    let mut pos = 0;
    while let Some(found) = lower[pos..].find(key) {
        let start = pos + found + key.len();
        out.push_str(&s[pos..start]);
        let rest = &s[start..];
        let end = rest
            .find(|c: char| {
                c == '&'
                    || c == ';'
                    || c == '"'
                    || c == '\''
                    || c == ')'
                    || c == '>'
                    || c.is_whitespace()
            })
            .unwrap_or(rest.len());
        if end > 0 && !rest[..end].starts_with("REDACTED") {
            out.push_str("REDACTED");
        } else {
            out.push_str(&rest[..end]);
        }
        pos = start + end;
    }
    out.push_str(&s[pos..]);
    out
}

/// How requests are authorised.
#[derive(Clone)]
pub enum Credential {
    /// A SAS query string (without `?`), appended to every URL.
    Sas(String),
    /// An Entra ID token source (requires https).
    Token(Arc<dyn TokenCredential>),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Sas(_) => f.write_str("Sas(REDACTED)"),
            Credential::Token(_) => f.write_str("Token"),
        }
    }
}

impl Credential {
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::Sas(_) => "SAS",
            Credential::Token(_) => "Entra ID",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    Invalid(String),
    #[error("{file}: cannot read the SAS file ({msg}); fix `[remote] sas_file` in termtag.toml")]
    SasFile { file: String, msg: String },
}

/// The pieces of a connection string termtag uses.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ConnectionString {
    pub account: Option<String>,
    pub key: Option<String>,
    pub blob_endpoint: Option<String>,
    pub sas: Option<String>,
}

impl ConnectionString {
    pub fn parse(s: &str) -> Result<ConnectionString, AuthError> {
        let mut cs = ConnectionString::default();
        let mut protocol = "https".to_string();
        let mut suffix = "core.windows.net".to_string();
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                return Err(AuthError::Invalid(
                    "AZURE_STORAGE_CONNECTION_STRING: a part is not Key=Value".into(),
                ));
            };
            match k.to_ascii_lowercase().as_str() {
                "accountname" => cs.account = Some(v.to_string()),
                "accountkey" => cs.key = Some(v.to_string()),
                "blobendpoint" => cs.blob_endpoint = Some(v.trim_end_matches('/').to_string()),
                "sharedaccesssignature" => cs.sas = Some(v.trim_start_matches('?').to_string()),
                "defaultendpointsprotocol" => protocol = v.to_string(),
                "endpointsuffix" => suffix = v.to_string(),
                "usedevelopmentstorage" if v.eq_ignore_ascii_case("true") => {
                    cs.account = Some("devstoreaccount1".into());
                    cs.key = Some(AZURITE_KEY.into());
                    cs.blob_endpoint = Some("http://127.0.0.1:10000/devstoreaccount1".into());
                }
                _ => {}
            }
        }
        if cs.blob_endpoint.is_none()
            && let Some(a) = &cs.account
        {
            cs.blob_endpoint = Some(format!("{protocol}://{a}.blob.{suffix}"));
        }
        if let Some(k) = &cs.key {
            register_secret(k);
        }
        if let Some(s) = &cs.sas {
            register_secret(s);
        }
        Ok(cs)
    }
}

/// The well-known key of the storage emulator's dev account (public, not a secret).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Signs an account SAS for the blob service: `permissions` such as `rwdlac`, valid from a few
/// minutes ago (clock skew) to `expiry`. Returns the query string without `?`.
pub fn account_sas(
    account: &str,
    key_b64: &str,
    permissions: &str,
    expiry: OffsetDateTime,
    https_only: bool,
) -> Result<String, AuthError> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(key_b64.trim())
        .map_err(|_| {
            AuthError::Invalid(
                "the storage account key is not valid base64; copy it again from the portal (Access keys)".into(),
            )
        })?;
    let fmt = |t: OffsetDateTime| {
        let t = t.to_offset(time::UtcOffset::UTC);
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    };
    let start = fmt(OffsetDateTime::now_utc() - time::Duration::minutes(15));
    let expiry = fmt(expiry);
    let protocol = if https_only { "https" } else { "https,http" };
    // Account SAS string-to-sign, version 2020-12-06 and later (the last line is the
    // encryption scope, empty here).
    let to_sign = format!(
        "{account}\n{permissions}\nb\nsco\n{start}\n{expiry}\n\n{protocol}\n{SAS_VERSION}\n\n"
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| {
        AuthError::Invalid("the storage account key cannot be used for HMAC".into())
    })?;
    mac.update(to_sign.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    register_secret(&sig);
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    Ok(format!(
        "sv={SAS_VERSION}&ss=b&srt=sco&sp={permissions}&st={}&se={}&spr={}&sig={}",
        enc(&start),
        enc(&expiry),
        enc(protocol),
        enc(&sig)
    ))
}

/// Where the containers are: the service URL (no trailing slash, no query) and the account.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub service: Url,
    pub account: Option<String>,
    /// The container the source URL names, if it names one.
    pub container: Option<String>,
}

/// True for hosts that use path-style URLs (`http://127.0.0.1:10000/ACCOUNT/CONTAINER`).
fn path_style(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(_)) | Some(url::Host::Ipv6(_)) => true,
        Some(url::Host::Domain(d)) => d == "localhost" || d.starts_with("azurite"),
        None => true,
    }
}

impl Endpoint {
    /// Splits a source URL such as `https://ACCOUNT.blob.core.windows.net/CONTAINER[/...]` or
    /// `http://127.0.0.1:PORT/devstoreaccount1/CONTAINER`. A SAS query on it is returned apart.
    pub fn parse(source: &str) -> Result<(Endpoint, Option<String>), AuthError> {
        let mut url = Url::parse(source).map_err(|e| {
            AuthError::Invalid(format!(
                "source `{}` is not a URL ({e}); use https://ACCOUNT.blob.core.windows.net/CONTAINER",
                redact(&crate::sanitize::for_terminal(source))
            ))
        })?;
        let sas = url.query().filter(|q| !q.is_empty()).map(str::to_string);
        if let Some(s) = &sas {
            register_secret(s);
        }
        url.set_query(None);
        url.set_fragment(None);
        let segments: Vec<String> = url
            .path_segments()
            .map(|s| s.filter(|p| !p.is_empty()).map(str::to_string).collect())
            .unwrap_or_default();
        let (account, rest) = if path_style(&url) {
            match segments.split_first() {
                Some((a, rest)) => (Some(a.clone()), rest.to_vec()),
                None => {
                    return Err(AuthError::Invalid(format!(
                        "source `{url}`: an emulator URL needs the account in its path, e.g. http://127.0.0.1:10000/devstoreaccount1/CONTAINER"
                    )));
                }
            }
        } else {
            let host = url.host_str().unwrap_or_default();
            (host.split('.').next().map(str::to_string), segments)
        };
        let container = rest.first().cloned();
        let mut service = url.clone();
        let base: Vec<&str> = if path_style(&url) {
            account.iter().map(String::as_str).collect()
        } else {
            Vec::new()
        };
        service.set_path(&base.join("/"));
        Ok((
            Endpoint {
                service,
                account,
                container,
            },
            sas,
        ))
    }

    /// The URL of `container` (percent-encoded by `url`), with the SAS query when given.
    pub fn container_url(&self, container: &str, sas: Option<&str>) -> Url {
        let mut u = self.service.clone();
        if let Ok(mut segs) = u.path_segments_mut() {
            segs.pop_if_empty().push(container);
        }
        u.set_query(sas);
        u
    }
}

/// Where secrets come from; the environment in real use, a map in tests.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

pub struct ProcessEnv;

/// Variables from a map: for tests and for tools that hold credentials themselves.
#[derive(Debug, Default, Clone)]
pub struct MapEnv(pub std::collections::HashMap<String, String>);

impl Env for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

/// Picks the credential (see the module doc) and, where a connection string names an endpoint
/// and the source does not, the endpoint.
pub fn resolve(
    endpoint: &Endpoint,
    source_sas: Option<&str>,
    sas_file: Option<&Path>,
    env: &dyn Env,
) -> Result<Credential, AuthError> {
    let https_only = endpoint.service.scheme() == "https";
    if let Some(s) = source_sas {
        return Ok(Credential::Sas(s.to_string()));
    }
    let from_sas_text = |text: &str, origin: &str| -> Result<Credential, AuthError> {
        let text = text.trim();
        let query = match text.split_once('?') {
            Some((_, q)) => q,
            None => text,
        };
        if !query.contains("sig=") {
            return Err(AuthError::Invalid(format!(
                "{origin} holds no SAS token (no sig= parameter); paste the SAS URL from the portal or `az storage account generate-sas`"
            )));
        }
        register_secret(query);
        Ok(Credential::Sas(query.to_string()))
    };
    if let Some(url) = env.var("AZURE_STORAGE_SAS_URL") {
        return from_sas_text(&url, "AZURE_STORAGE_SAS_URL");
    }
    if let Some(file) = sas_file {
        let text = std::fs::read_to_string(file).map_err(|e| AuthError::SasFile {
            file: crate::sanitize::for_terminal(&file.to_string_lossy()),
            msg: e.to_string(),
        })?;
        return from_sas_text(
            &text,
            &crate::sanitize::for_terminal(&file.to_string_lossy()),
        );
    }
    let sign = |account: &str, key: &str| -> Result<Credential, AuthError> {
        register_secret(key);
        let expiry = OffsetDateTime::now_utc() + SAS_LIFETIME;
        Ok(Credential::Sas(account_sas(
            account, key, "rwdlac", expiry, https_only,
        )?))
    };
    if let Some(cs) = env.var("AZURE_STORAGE_CONNECTION_STRING") {
        let cs = ConnectionString::parse(&cs)?;
        if let Some(sas) = cs.sas {
            return Ok(Credential::Sas(sas));
        }
        let account = cs.account.or_else(|| endpoint.account.clone());
        return match (account, cs.key) {
            (Some(a), Some(k)) => sign(&a, &k),
            _ => Err(AuthError::Invalid(
                "AZURE_STORAGE_CONNECTION_STRING has neither AccountName+AccountKey nor SharedAccessSignature".into(),
            )),
        };
    }
    if let Some(key) = env.var("AZURE_STORAGE_KEY") {
        let account = env
            .var("AZURE_STORAGE_ACCOUNT")
            .or_else(|| endpoint.account.clone())
            .ok_or_else(|| {
                AuthError::Invalid(
                    "AZURE_STORAGE_KEY is set but AZURE_STORAGE_ACCOUNT is not".into(),
                )
            })?;
        return sign(&account, &key);
    }
    if !https_only {
        return Err(AuthError::Invalid(format!(
            "{}: no credential for an http endpoint; set AZURE_STORAGE_SAS_URL, AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT + AZURE_STORAGE_KEY",
            endpoint.service
        )));
    }
    entra_id(env).map(Credential::Token)
}

fn entra_id(env: &dyn Env) -> Result<Arc<dyn TokenCredential>, AuthError> {
    let err = |what: &str, e: azure_core::Error| {
        AuthError::Invalid(format!(
            "{what}: {}; set AZURE_STORAGE_SAS_URL or AZURE_STORAGE_ACCOUNT + AZURE_STORAGE_KEY, or run `az login`",
            redact(&e.to_string())
        ))
    };
    if env.var("AZURE_FEDERATED_TOKEN_FILE").is_some() {
        let c = azure_identity::WorkloadIdentityCredential::new(None)
            .map_err(|e| err("workload identity", e))?;
        return Ok(c);
    }
    if env.var("IDENTITY_ENDPOINT").is_some() || env.var("TERMTAG_MANAGED_IDENTITY").is_some() {
        let c = azure_identity::ManagedIdentityCredential::new(None)
            .map_err(|e| err("managed identity", e))?;
        return Ok(c);
    }
    let c = azure_identity::DeveloperToolsCredential::new(None)
        .map_err(|e| err("Azure CLI / azd login", e))?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct MapEnv(HashMap<&'static str, String>);
    impl Env for MapEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
    }

    #[test]
    fn redacts_sas_keys_and_registered_secrets() {
        let s = "GET https://a.blob.core.windows.net/c/x.jpg?sv=2022-11-02&sig=abc%2Fdef%3D&se=1 failed";
        let r = redact(s);
        assert!(!r.contains("abc%2Fdef"), "{r}");
        assert!(r.contains("sig=REDACTED&se=1"), "{r}");
        let cs =
            "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=c2VjcmV0a2V5;EndpointSuffix=x";
        let r = redact(cs);
        assert!(!r.contains("c2VjcmV0a2V5"), "{r}");
        assert!(r.contains("AccountKey=REDACTED;"), "{r}");
        register_secret("very-secret-token-123");
        let r = redact("error: token very-secret-token-123 and very-secret-token-123");
        assert_eq!(r, "error: token REDACTED and REDACTED");
        assert_eq!(redact("SIG=x y"), "SIG=REDACTED y");
        assert_eq!(redact("nothing here"), "nothing here");
    }

    #[test]
    fn parses_endpoints() {
        let (e, sas) =
            Endpoint::parse("https://acct.blob.core.windows.net/activelearningimages?sv=1&sig=zz")
                .unwrap();
        assert_eq!(e.service.as_str(), "https://acct.blob.core.windows.net/");
        assert_eq!(e.account.as_deref(), Some("acct"));
        assert_eq!(e.container.as_deref(), Some("activelearningimages"));
        assert_eq!(sas.as_deref(), Some("sv=1&sig=zz"));
        assert_eq!(
            e.container_url("labels", None).as_str(),
            "https://acct.blob.core.windows.net/labels"
        );
        let (e, _) = Endpoint::parse("http://127.0.0.1:10000/devstoreaccount1/imgs").unwrap();
        assert_eq!(e.account.as_deref(), Some("devstoreaccount1"));
        assert_eq!(e.container.as_deref(), Some("imgs"));
        assert_eq!(
            e.container_url("labels", Some("a=b")).as_str(),
            "http://127.0.0.1:10000/devstoreaccount1/labels?a=b"
        );
        let (e, _) = Endpoint::parse("http://127.0.0.1:10000/devstoreaccount1").unwrap();
        assert_eq!(e.container, None);
        assert!(Endpoint::parse("not a url").is_err());
    }

    #[test]
    fn connection_strings() {
        let cs = ConnectionString::parse(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Zm9vYmFyYmF6cXV4;BlobEndpoint=http://127.0.0.1:1/devstoreaccount1/;",
        )
        .unwrap();
        assert_eq!(cs.account.as_deref(), Some("devstoreaccount1"));
        assert_eq!(
            cs.blob_endpoint.as_deref(),
            Some("http://127.0.0.1:1/devstoreaccount1")
        );
        let cs = ConnectionString::parse("AccountName=acct;AccountKey=Zm9v").unwrap();
        assert_eq!(
            cs.blob_endpoint.as_deref(),
            Some("https://acct.blob.core.windows.net")
        );
        assert!(ConnectionString::parse("garbage").is_err());
    }

    #[test]
    fn resolves_in_order_and_never_shows_the_key() {
        let (ep, _) = Endpoint::parse("https://acct.blob.core.windows.net/imgs").unwrap();
        let env = MapEnv(HashMap::from([
            ("AZURE_STORAGE_ACCOUNT", "acct".to_string()),
            ("AZURE_STORAGE_KEY", AZURITE_KEY.to_string()),
        ]));
        let c = resolve(&ep, None, None, &env).unwrap();
        let Credential::Sas(q) = &c else {
            panic!("expected a SAS")
        };
        assert!(q.contains("sp=rwdlac") && q.contains("spr=https&"), "{q}");
        assert!(!format!("{c:?}").contains("sig"));
        assert!(!redact(q).contains(&q[q.find("sig=").unwrap() + 4..]));

        let env = MapEnv(HashMap::from([(
            "AZURE_STORAGE_SAS_URL",
            "https://acct.blob.core.windows.net/?sv=x&sig=y".to_string(),
        )]));
        let Credential::Sas(q) = resolve(&ep, None, None, &env).unwrap() else {
            panic!()
        };
        assert_eq!(q, "sv=x&sig=y");

        let env = MapEnv(HashMap::from([(
            "AZURE_STORAGE_SAS_URL",
            "https://acct.blob.core.windows.net/".to_string(),
        )]));
        let e = resolve(&ep, None, None, &env).unwrap_err().to_string();
        assert!(e.contains("no SAS token"), "{e}");

        let env = MapEnv(HashMap::from([(
            "AZURE_STORAGE_KEY",
            "not base64!!".to_string(),
        )]));
        let e = resolve(&ep, None, None, &env).unwrap_err().to_string();
        assert!(
            e.contains("AZURE_STORAGE_ACCOUNT") || e.contains("base64"),
            "{e}"
        );
        assert!(!e.contains("not base64!!"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("sas.txt");
        std::fs::write(&f, "sv=2022&sig=fromfile\n").unwrap();
        let Credential::Sas(q) = resolve(&ep, None, Some(&f), &MapEnv(HashMap::new())).unwrap()
        else {
            panic!()
        };
        assert_eq!(q, "sv=2022&sig=fromfile");
        let e = resolve(
            &ep,
            None,
            Some(&dir.path().join("missing")),
            &MapEnv(HashMap::new()),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("sas_file"), "{e}");

        let (http_ep, _) = Endpoint::parse("http://127.0.0.1:1/devstoreaccount1/x").unwrap();
        let e = resolve(&http_ep, None, None, &MapEnv(HashMap::new()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("AZURE_STORAGE_SAS_URL"), "{e}");
    }
}
