//! `s3://` objects (`butler.yaml`, repository indexes) read the way lsst-resources reads them in
//! production (boto3 under `lsst.resources.s3utils.getS3Client`), without Python.
//!
//! **URIs.** `s3://[PROFILE@]bucket/key`: the profile is the URI's user name, the bucket the rest of
//! the network location (a Ceph `tenant:bucket` included), the key the path without its leading
//! `/`, percent-decoded once; `?query` and `#fragment` are not part of the key.
//!
//! **Endpoint.** `LSST_RESOURCES_S3_PROFILE_<PROFILE>` (profile name case-sensitive) when the URI
//! has a profile and the variable is set, else `S3_ENDPOINT_URL`, else AWS
//! (`https://s3.<region>.amazonaws.com`). The endpoint URL may carry credentials,
//! `https://KEY:SECRET@host[:port]`, each URL-encoded (decoded once, `+` stays `+`); plain `http://`
//! is allowed. Requests are path-style (`endpoint/bucket/key`), as the S3 at SLAC needs.
//!
//! **Credentials**, first found wins, as boto3 resolves them for lsst-resources:
//! 1. the `KEY:SECRET` in the endpoint variable;
//! 2. with a profile in the URI: section `[PROFILE]` of the shared credentials file, then
//!    `[profile PROFILE]` of the config file. As in boto3, a named profile never falls back to the
//!    `AWS_*` variables;
//! 3. without a profile: `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN` or
//!    `AWS_SECURITY_TOKEN`), then the section named by `AWS_DEFAULT_PROFILE` / `AWS_PROFILE`
//!    (default `default`) of the credentials file, then of the config file.
//!
//! The credentials file is `AWS_SHARED_CREDENTIALS_FILE` (default `$HOME/.aws/credentials`), the
//! config file `AWS_CONFIG_FILE` (default `$HOME/.aws/config`). When nothing is found, [`fetch`]
//! fails with [`S3Error::NoCredentials`], listing every source it tried. Unlike boto3 it never
//! asks the EC2/ECS instance-metadata service: object_store is always given explicit static
//! credentials, or told to skip signing.
//!
//! **Anonymous access** (public buckets) is requested with `AWS_SKIP_SIGNATURE=true` (object_store's
//! own variable; `1`, `yes`, `on`, `y` work too): requests are then sent unsigned and no credential
//! source is read, whatever else is set.
//!
//! **Region** (used in signatures): `AWS_DEFAULT_REGION`, else `AWS_REGION`, else `region` in the
//! config file's profile section, else `us-east-1`.
//!
//! **Also honoured**, as boto3 does: `LSST_DISABLE_BUCKET_VALIDATION` (allows bucket names outside
//! `[A-Za-z0-9._-]`, e.g. Ceph's `tenant:bucket`), `AWS_CA_BUNDLE` (extra PEM root certificates),
//! `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` (lower-case spellings first).
//!
//! Every variable is read through the caller's `env` function, never from the process environment.
//!
//! **Errors** never contain a secret key, a session token or a URL with credentials: not found
//! (404, `NoSuchKey`, `NoSuchBucket`) and refused (401/403: bad key, bad signature, no permission)
//! are permanent and name the object, the endpoint and where the credentials came from; connection
//! failures, timeouts, 5xx and 429 are transient. object_store retries transient failures a few
//! times (3 retries, at most 30 s) before [`fetch`] reports them.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AwsCredential};
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpResponse, HttpService,
};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, RetryConfig, StaticCredentialProvider,
};
use transform_core::{Secret, redact};

/// Region used when none is configured (boto3's default for S3).
const DEFAULT_REGION: &str = "us-east-1";
/// Retries object_store makes for transient failures before giving up.
const MAX_RETRIES: usize = 3;
/// Upper bound on the time spent retrying one request.
const RETRY_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout for opening a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout for each read from the socket (boto3's `read_timeout` in lsst-resources).
const READ_TIMEOUT: Duration = Duration::from_secs(180);
/// At most this many characters of a lower layer's message go into an error.
const MAX_DETAIL_CHARS: usize = 600;

/// An `s3://[PROFILE@]bucket/key` URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct S3Uri {
    /// The profile (the URI's user name), naming `LSST_RESOURCES_S3_PROFILE_<profile>` and the
    /// credentials-file section.
    pub(crate) profile: Option<String>,
    /// The bucket (may be a Ceph `tenant:bucket`).
    pub(crate) bucket: String,
    /// The object key, decoded, without a leading `/`; empty for the bucket's root, ending with `/`
    /// for a "directory".
    pub(crate) key: String,
}

impl S3Uri {
    /// Parses `s3://[PROFILE@]bucket/key` as lsst-resources does (`urllib.parse.urlparse`, the
    /// profile is the user name, the key the unquoted path without leading `/`).
    ///
    /// A key may be empty (`s3://bucket`, the bucket's root) or end with `/` (a directory): such
    /// URIs can be [joined](S3Uri::join) but not [fetched](fetch). Credentials in the URI
    /// (`s3://KEY:SECRET@bucket`) are refused: lsst-resources would silently take `KEY` as a
    /// profile name.
    pub(crate) fn parse(uri: &str) -> Result<S3Uri, S3Error> {
        let trimmed = uri.trim();
        let invalid = |reason: &str| S3Error::InvalidUri {
            uri: shown_uri(trimmed),
            reason: reason.to_owned(),
        };
        let rest = match trimmed.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("s3") => rest,
            _ => return Err(invalid("not an s3:// URI")),
        };
        let netloc_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (netloc, after) = rest.split_at(netloc_end);
        let path = &after[..after.find(['?', '#']).unwrap_or(after.len())];
        let parts: Vec<&str> = netloc.split('@').collect();
        let (profile, bucket) = match parts.as_slice() {
            [bucket] => (None, *bucket),
            [userinfo, bucket] => {
                if userinfo.contains(':') {
                    return Err(invalid(
                        "credentials do not belong in an s3:// URI: put them in \
                         LSST_RESOURCES_S3_PROFILE_<profile>, a credentials file or AWS_* variables",
                    ));
                }
                if userinfo.is_empty() {
                    return Err(invalid("empty profile name before `@`"));
                }
                (Some((*userinfo).to_owned()), *bucket)
            }
            _ => return Err(invalid("unexpected extra `@`")),
        };
        if bucket.is_empty() {
            return Err(invalid("no bucket name"));
        }
        Ok(S3Uri {
            profile,
            bucket: bucket.to_owned(),
            key: percent_decode(path.trim_start_matches('/')),
        })
    }

    /// The URI of `relative` resolved against this key's directory (the key itself when it ends
    /// with `/`, else everything up to its last `/`), with the same profile and bucket, the way
    /// `ResourcePath.updatedFile` / `parent().join` resolve it: `.` and `..` segments and repeated
    /// slashes are normalized (`..` stops at the bucket's root), a `relative` starting with `/` is
    /// taken from the bucket's root, and a trailing `/` is kept. `relative` is a plain path, not
    /// percent-encoded.
    ///
    /// `s3://b/repo/butler.yaml` joined with `gen3.sqlite3` is `s3://b/repo/gen3.sqlite3`;
    /// `s3://b/repo/` joined with `butler.yaml` is `s3://b/repo/butler.yaml`; but
    /// `s3://b/repo` (no trailing `/`) joined with `butler.yaml` is `s3://b/butler.yaml`.
    pub(crate) fn join(&self, relative: &str) -> S3Uri {
        let base = if relative.starts_with('/') {
            String::new()
        } else {
            match self.key.rfind('/') {
                Some(i) => self.key[..=i].to_owned(),
                None => String::new(),
            }
        };
        let mut segments: Vec<&str> = Vec::new();
        for segment in base.split('/').chain(relative.split('/')) {
            match segment {
                "" | "." => {}
                ".." => {
                    segments.pop();
                }
                s => segments.push(s),
            }
        }
        let mut key = segments.join("/");
        if relative.ends_with('/') && !key.is_empty() {
            key.push('/');
        }
        S3Uri {
            profile: self.profile.clone(),
            bucket: self.bucket.clone(),
            key,
        }
    }

    /// `s3://bucket/key`, for messages (the profile is added as ` (profile P)`).
    fn object(&self) -> String {
        let object = format!("s3://{}/{}", self.bucket, encode_key(&self.key));
        match &self.profile {
            Some(p) => format!("{object} (profile {p})"),
            None => object,
        }
    }
}

impl fmt::Display for S3Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("s3://")?;
        if let Some(profile) = &self.profile {
            write!(f, "{profile}@")?;
        }
        write!(f, "{}/{}", self.bucket, encode_key(&self.key))
    }
}

/// What can go wrong reading an `s3://` object. No variant holds a secret key, a session token or a
/// URL with credentials.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// The URI is not a usable `s3://[PROFILE@]bucket/key`.
    #[error("invalid S3 URI `{uri}`: {reason}")]
    InvalidUri {
        /// The URI as given (any password in it replaced by `***`).
        uri: String,
        /// What is wrong.
        reason: String,
    },
    /// The S3 settings in the environment are malformed: an endpoint or proxy variable, a
    /// credentials or config file, a CA bundle.
    #[error("S3 settings for {object}: {reason}")]
    Config {
        /// The object being read, `s3://bucket/key (profile P)`.
        object: String,
        /// What is wrong (naming the variable or file, never quoting a secret).
        reason: String,
    },
    /// No credentials in any source lsst-resources would read.
    #[error(
        "no S3 credentials for {object}: tried {tried}. Give credentials in one of the sources \
         read, or set AWS_SKIP_SIGNATURE=true for anonymous access (the EC2/ECS \
         instance-metadata service is never asked)"
    )]
    NoCredentials {
        /// The object being read, `s3://bucket/key (profile P)`.
        object: String,
        /// Every source tried and why it gave nothing.
        tried: String,
    },
    /// The object (or its bucket) does not exist.
    #[error("{object} not found at endpoint {endpoint} ({detail})")]
    NotFound {
        /// The object, `s3://bucket/key (profile P)`.
        object: String,
        /// The endpoint asked (without credentials).
        endpoint: String,
        /// The server's answer, e.g. `404 Not Found, NoSuchKey: ...`.
        detail: String,
    },
    /// The server refused the credentials: unknown key, wrong secret (signature mismatch),
    /// expired token or no permission on the object.
    #[error(
        "endpoint {endpoint} rejected the credentials from {credentials} for {object} ({detail})"
    )]
    Denied {
        /// The object, `s3://bucket/key (profile P)`.
        object: String,
        /// The endpoint asked (without credentials).
        endpoint: String,
        /// Where the credentials came from, with the access key id (never the secret).
        credentials: String,
        /// The server's answer, e.g. `403 Forbidden, SignatureDoesNotMatch: ...`.
        detail: String,
    },
    /// Any other failure: unreachable endpoint, timeout, server error, unexpected answer.
    #[error("reading {object} from endpoint {endpoint} failed: {detail}")]
    Request {
        /// The object, `s3://bucket/key (profile P)`.
        object: String,
        /// The endpoint asked (without credentials).
        endpoint: String,
        /// What failed.
        detail: String,
        /// Whether retrying later may work (connection refused, timeout, 5xx, 429).
        transient: bool,
    },
}

impl S3Error {
    /// Whether retrying later may succeed: connection failures, timeouts, 5xx and 429 answers.
    /// Everything else (bad URI or settings, no or rejected credentials, not found) is permanent.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            S3Error::Request {
                transient: true,
                ..
            }
        )
    }
}

/// Fetches the object's bytes.
///
/// Every setting is read through `env` (see the module docs), before the returned future first
/// runs, so the future does not borrow `env` and is `Send`.
pub(crate) fn fetch(
    uri: &S3Uri,
    env: &dyn Fn(&str) -> Option<String>,
) -> impl Future<Output = Result<Vec<u8>, S3Error>> + Send + use<> {
    let plan = Plan::resolve(uri, env);
    async move { plan?.run().await }
}

/// Where an object is fetched from and with which credentials, resolved from the environment.
#[derive(Debug)]
struct Plan {
    object: String,
    bucket: String,
    key: ObjectPath,
    /// `None` for AWS itself.
    endpoint: Option<String>,
    /// The endpoint for messages.
    endpoint_shown: String,
    region: String,
    auth: Auth,
    client: reqwest::Client,
    /// Strings that must never reach an error message (secret, token, raw endpoint variables).
    sensitive: Vec<Secret>,
}

/// How requests are signed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Auth {
    /// Unsigned requests (`AWS_SKIP_SIGNATURE`).
    Anonymous,
    /// Static credentials.
    Static {
        key_id: String,
        secret: Secret,
        token: Option<Secret>,
        /// Where they came from, for messages.
        source: String,
    },
}

impl Auth {
    fn describe(&self) -> String {
        match self {
            Auth::Anonymous => {
                "anonymous access (AWS_SKIP_SIGNATURE, unsigned requests)".to_owned()
            }
            Auth::Static { key_id, source, .. } => format!("{source} (access key id `{key_id}`)"),
        }
    }
}

/// An endpoint URL split from the credentials it may carry.
#[derive(Debug, PartialEq, Eq)]
struct Endpoint {
    /// `scheme://host[:port][/path]`, no credentials, no trailing `/`.
    url: String,
    credentials: Option<(String, Secret)>,
}

impl Plan {
    fn resolve(uri: &S3Uri, env: &dyn Fn(&str) -> Option<String>) -> Result<Plan, S3Error> {
        // Empty variables count as unset, as in lsst-resources and botocore.
        let get = |name: &str| env(name).filter(|v| !v.is_empty());
        let object = uri.object();
        let config_error = |reason: String| S3Error::Config {
            object: object.clone(),
            reason,
        };
        let invalid = |reason: &str| S3Error::InvalidUri {
            uri: uri.to_string(),
            reason: reason.to_owned(),
        };
        if uri.key.is_empty() || uri.key.ends_with('/') {
            return Err(invalid("names a directory, not an object"));
        }
        let key = ObjectPath::parse(&uri.key).map_err(|_| {
            invalid(
                "the key has an empty, `.` or `..` segment or a control character, which \
                 object_store cannot request",
            )
        })?;
        let validate_bucket = get("LSST_DISABLE_BUCKET_VALIDATION")
            .is_none_or(|v| matches!(v.to_ascii_lowercase().as_str(), "0" | "f" | "n" | "false"));
        let plain_bucket = uri
            .bucket
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if validate_bucket && !plain_bucket {
            return Err(invalid(
                "invalid bucket name (set LSST_DISABLE_BUCKET_VALIDATION=1 for Ceph \
                 `tenant:bucket` names)",
            ));
        }

        let mut sensitive = Vec::new();
        let mut tried = Vec::new();

        // The endpoint: the profile's variable, else S3_ENDPOINT_URL, else AWS.
        let mut endpoint_var = None;
        if let Some(profile) = &uri.profile {
            let name = format!("LSST_RESOURCES_S3_PROFILE_{profile}");
            match get(&name) {
                Some(value) => endpoint_var = Some((name, value)),
                None => tried.push(format!("{name} (not set)")),
            }
        }
        if endpoint_var.is_none() {
            match get("S3_ENDPOINT_URL") {
                Some(value) => endpoint_var = Some(("S3_ENDPOINT_URL".to_owned(), value)),
                None => tried.push("S3_ENDPOINT_URL (not set)".to_owned()),
            }
        }
        let endpoint = match &endpoint_var {
            Some((name, value)) => {
                sensitive.push(Secret::new(value.clone()));
                Some(parse_endpoint(name, value).map_err(&config_error)?)
            }
            None => None,
        };

        let anonymous = get("AWS_SKIP_SIGNATURE").is_some_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on" | "y"
            )
        });
        let files = SharedFiles::locate(&get);
        // The profile whose file sections are read: the URI's, unless the endpoint variable gave
        // credentials (lsst-resources then drops it); else AWS_DEFAULT_PROFILE / AWS_PROFILE.
        let url_credentials = endpoint.as_ref().and_then(|e| e.credentials.clone());
        let session_profile = match &uri.profile {
            Some(p) if url_credentials.is_none() => p.clone(),
            _ => get("AWS_DEFAULT_PROFILE")
                .or_else(|| get("AWS_PROFILE"))
                .unwrap_or_else(|| "default".to_owned()),
        };

        let auth = if anonymous {
            Auth::Anonymous
        } else if let Some((key_id, secret)) = url_credentials {
            let name = endpoint_var.as_ref().map_or("", |(n, _)| n.as_str());
            Auth::Static {
                key_id,
                secret,
                token: None,
                source: format!("the KEY:SECRET in {name}"),
            }
        } else {
            if let Some((name, _)) = &endpoint_var {
                tried.push(format!("{name} (no KEY:SECRET@ in it)"));
            }
            // boto3 drops the AWS_* variables when a profile is named explicitly.
            let from_env_vars = if uri.profile.is_none() {
                let found = credentials_from_env_vars(&get).map_err(&config_error)?;
                if found.is_none() {
                    tried.push("AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (not set)".to_owned());
                }
                found
            } else {
                None
            };
            let found = match from_env_vars {
                Some(auth) => Some(auth),
                None => files
                    .credentials(&session_profile, &mut tried)
                    .map_err(&config_error)?,
            };
            match found {
                Some(auth) => auth,
                None => {
                    if uri.profile.is_some() {
                        tried.push(
                            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (not read for a named \
                             profile, as in boto3)"
                                .to_owned(),
                        );
                    }
                    return Err(S3Error::NoCredentials {
                        object: object.clone(),
                        tried: tried.join(", "),
                    });
                }
            }
        };
        if let Auth::Static { secret, token, .. } = &auth {
            sensitive.push(secret.clone());
            sensitive.extend(token.clone());
        }

        let region = get("AWS_DEFAULT_REGION")
            .or_else(|| get("AWS_REGION"))
            .or_else(|| files.region(&session_profile))
            .unwrap_or_else(|| DEFAULT_REGION.to_owned());

        let (endpoint_url, endpoint_shown) = match endpoint {
            Some(e) => (Some(e.url.clone()), e.url),
            None => (None, format!("https://s3.{region}.amazonaws.com (AWS)")),
        };
        let https_only = endpoint_url
            .as_deref()
            .is_none_or(|u| u.to_ascii_lowercase().starts_with("https://"));
        let client = build_client(&get, https_only, &mut sensitive).map_err(&config_error)?;

        Ok(Plan {
            object,
            bucket: uri.bucket.clone(),
            key,
            endpoint: endpoint_url,
            endpoint_shown,
            region,
            auth,
            client,
            sensitive,
        })
    }

    async fn run(self) -> Result<Vec<u8>, S3Error> {
        let observed = Arc::new(Observed::default());
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&self.bucket)
            .with_region(&self.region)
            .with_virtual_hosted_style_request(false)
            .with_allow_http(true)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(5),
                    base: 2.0,
                },
                max_retries: MAX_RETRIES,
                retry_timeout: RETRY_TIMEOUT,
            })
            .with_http_connector(Connector {
                client: self.client.clone(),
                observed: Arc::clone(&observed),
            });
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        // Explicit static credentials in every case, so object_store never looks for others (the
        // instance-metadata service among them); anonymous access only skips signing.
        let credential = match &self.auth {
            Auth::Anonymous => {
                builder = builder.with_skip_signature(true);
                AwsCredential {
                    key_id: String::new(),
                    secret_key: String::new(),
                    token: None,
                }
            }
            Auth::Static {
                key_id,
                secret,
                token,
                ..
            } => AwsCredential {
                key_id: key_id.clone(),
                secret_key: secret.expose().to_owned(),
                token: token.as_ref().map(|t| t.expose().to_owned()),
            },
        };
        let builder = builder.with_credentials(Arc::new(StaticCredentialProvider::new(credential)));
        tracing::debug!(event = "s3_object_fetch",
            object = %self.object,
            endpoint = %self.endpoint_shown,
            region = %self.region,
            credentials = %self.auth.describe(),
            "fetching S3 object"
        );
        let store = builder.build().map_err(|e| S3Error::Config {
            object: self.object.clone(),
            reason: format!("object_store refused the settings: {}", self.detail_of(&e)),
        })?;
        let result = match store.get(&self.key).await {
            Ok(result) => result,
            Err(e) => return Err(self.classify(&e, observed.last(), false)),
        };
        match result.bytes().await {
            Ok(bytes) => Ok(bytes.to_vec()),
            Err(e) => Err(self.classify(&e, observed.last(), true)),
        }
    }

    /// Turns an object_store error into an [`S3Error`], using the last HTTP exchange seen.
    fn classify(
        &self,
        error: &object_store::Error,
        last: Option<Observation>,
        reading_body: bool,
    ) -> S3Error {
        let text = error_chain(error);
        let detail = match (last, s3_error_code(&text)) {
            (Some(Observation::Status(s)), Some((code, message))) if message.is_empty() => {
                format!("{}, {code}", status_text(s))
            }
            (Some(Observation::Status(s)), Some((code, message))) => {
                format!("{}, {code}: {message}", status_text(s))
            }
            (Some(Observation::Status(s)), None) if !(200..300).contains(&s) => status_text(s),
            (Some(Observation::Transport(kind)), _) if !reading_body => {
                let what = match kind {
                    HttpErrorKind::Connect => "cannot connect",
                    HttpErrorKind::Timeout => "timed out",
                    HttpErrorKind::Request | HttpErrorKind::Interrupted => "connection lost",
                    HttpErrorKind::Decode => "cannot decode the response",
                    _ => "HTTP error",
                };
                format!("{what}: {}", truncate(&innermost(error)))
            }
            _ => truncate(&text),
        };
        let detail = redact_all(&detail, &self.sensitive);
        let object = self.object.clone();
        let endpoint = self.endpoint_shown.clone();
        match error {
            object_store::Error::NotFound { .. } => S3Error::NotFound {
                object,
                endpoint,
                detail,
            },
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => S3Error::Denied {
                object,
                endpoint,
                credentials: self.auth.describe(),
                detail,
            },
            _ => {
                let transient = reading_body
                    || match last {
                        Some(Observation::Status(s)) => s >= 500 || s == 429 || s == 408 || s < 300,
                        Some(Observation::Transport(_)) => true,
                        // No request went out: a settings problem.
                        None => false,
                    };
                S3Error::Request {
                    object,
                    endpoint,
                    detail,
                    transient,
                }
            }
        }
    }

    fn detail_of(&self, error: &dyn StdError) -> String {
        redact_all(&truncate(&error_chain(error)), &self.sensitive)
    }
}

/// The `AWS_*` credential variables, as botocore's `EnvProvider` reads them.
fn credentials_from_env_vars(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<Auth>, String> {
    let key_id = get("AWS_ACCESS_KEY_ID");
    let secret = get("AWS_SECRET_ACCESS_KEY");
    match (key_id, secret) {
        (Some(key_id), Some(secret)) => Ok(Some(Auth::Static {
            key_id,
            secret: Secret::new(secret),
            token: get("AWS_SECURITY_TOKEN")
                .or_else(|| get("AWS_SESSION_TOKEN"))
                .map(Secret::new),
            source: "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY".to_owned(),
        })),
        (Some(_), None) => {
            Err("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not".to_owned())
        }
        (None, Some(_)) => {
            Err("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not".to_owned())
        }
        (None, None) => Ok(None),
    }
}

/// Splits an endpoint variable's value as lsst-resources' `_parse_endpoint_config` does (urllib3
/// `parse_url`, auth split on `:` into exactly two parts, each `urllib.parse.unquote`d).
///
/// Errors name the variable, never its value.
fn parse_endpoint(name: &str, value: &str) -> Result<Endpoint, String> {
    let value = value.trim();
    let malformed = |what: &str| format!("{name} is not a valid endpoint URL: {what}");
    let Some((scheme, rest)) = value.split_once("://") else {
        return Err(malformed("expected http://... or https://..."));
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(malformed("the scheme must be http or https"));
    }
    let authority_end = rest.find(['/', '\\', '?', '#']).unwrap_or(rest.len());
    let (authority, after) = rest.split_at(authority_end);
    let path = &after[..after.find(['?', '#']).unwrap_or(after.len())];
    let (auth, host_port) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    let host_ok = if let Some(bracketed) = host_port.strip_prefix('[') {
        // An IPv6 literal, `[::1]` or `[::1]:9000`.
        match bracketed.split_once(']') {
            Some((host, port)) => !host.is_empty() && valid_port(port),
            None => false,
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => !host.is_empty() && valid_port(&format!(":{port}")),
            None => !host_port.is_empty(),
        }
    };
    if !host_ok {
        return Err(malformed(
            "expected a host name and an optional numeric port",
        ));
    }
    let credentials = match auth {
        None => None,
        Some(auth) => {
            let parts: Vec<&str> = auth.split(':').collect();
            let [key, secret] = parts.as_slice() else {
                return Err(format!(
                    "{name}: the credentials before `@` must be KEY:SECRET, each URL-encoded \
                     (`:` as %3A, `/` as %2F, `@` as %40)"
                ));
            };
            let (key, secret) = (percent_decode(key), percent_decode(secret));
            if key.is_empty() || secret.is_empty() {
                return Err(format!("{name}: empty access key or secret before `@`"));
            }
            Some((key, Secret::new(secret)))
        }
    };
    let url = format!(
        "{scheme}://{}{}",
        host_port.to_ascii_lowercase(),
        path.trim_end_matches('/')
    );
    Ok(Endpoint { url, credentials })
}

/// Whether `port` is empty or `:` followed by a port number (digits, at most 65535: object_store
/// panics on a larger one when it signs the request).
fn valid_port(port: &str) -> bool {
    port.is_empty()
        || port.strip_prefix(':').is_some_and(|p| {
            !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) && p.parse::<u16>().is_ok()
        })
}

/// The shared credentials and config files.
#[derive(Debug)]
struct SharedFiles {
    credentials: Option<PathBuf>,
    config: Option<PathBuf>,
}

impl SharedFiles {
    fn locate(get: &dyn Fn(&str) -> Option<String>) -> SharedFiles {
        let home = get("HOME");
        let path = |var: &str, default: &str| -> Option<PathBuf> {
            match get(var) {
                Some(p) => match (p.strip_prefix("~/"), &home) {
                    (Some(rest), Some(home)) => Some(PathBuf::from(home).join(rest)),
                    _ => Some(PathBuf::from(p)),
                },
                None => home.as_ref().map(|h| PathBuf::from(h).join(default)),
            }
        };
        SharedFiles {
            credentials: path("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"),
            config: path("AWS_CONFIG_FILE", ".aws/config"),
        }
    }

    /// Credentials of `profile`: `[profile]` of the credentials file, then `[profile profile]`
    /// (`[default]` for `default`) of the config file. Records in `tried` why each gave nothing.
    fn credentials(&self, profile: &str, tried: &mut Vec<String>) -> Result<Option<Auth>, String> {
        let sources = [
            (
                &self.credentials,
                profile.to_owned(),
                "AWS_SHARED_CREDENTIALS_FILE",
            ),
            (&self.config, config_section(profile), "AWS_CONFIG_FILE"),
        ];
        for (path, section, var) in sources {
            let Some(path) = path else {
                tried.push(format!(
                    "the file named by {var} (neither it nor HOME is set)"
                ));
                continue;
            };
            let where_ = format!("section [{section}] of {}", path.display());
            let Some(ini) = read_ini(path)? else {
                tried.push(format!("{where_} (no such file)"));
                continue;
            };
            let Some(values) = ini_section(&ini, &section) else {
                tried.push(format!("{where_} (no such section)"));
                continue;
            };
            let value = |k: &str| {
                values
                    .iter()
                    .rev()
                    .find(|(key, v)| key == k && !v.is_empty())
                    .map(|(_, v)| v.clone())
            };
            match (value("aws_access_key_id"), value("aws_secret_access_key")) {
                (Some(key_id), Some(secret)) => {
                    return Ok(Some(Auth::Static {
                        key_id,
                        secret: Secret::new(secret),
                        token: value("aws_security_token")
                            .or_else(|| value("aws_session_token"))
                            .map(Secret::new),
                        source: where_,
                    }));
                }
                (Some(_), None) => {
                    return Err(format!(
                        "{where_} has aws_access_key_id but no aws_secret_access_key"
                    ));
                }
                _ => tried.push(format!("{where_} (no aws_access_key_id)")),
            }
        }
        Ok(None)
    }

    /// `region` of `profile` in the config file, if any.
    fn region(&self, profile: &str) -> Option<String> {
        let ini = read_ini(self.config.as_ref()?).ok()??;
        ini_section(&ini, &config_section(profile))?
            .iter()
            .rev()
            .find(|(k, v)| k == "region" && !v.is_empty())
            .map(|(_, v)| v.clone())
    }
}

/// The config file's section for a profile (`[default]`, `[profile NAME]`).
fn config_section(profile: &str) -> String {
    if profile == "default" {
        "default".to_owned()
    } else {
        format!("profile {profile}")
    }
}

/// An INI file as botocore's `configparser` reads it: sections of `(lower-cased key, value)`.
type Ini = Vec<(String, Vec<(String, String)>)>;

/// Reads an INI file; `Ok(None)` when it does not exist.
fn read_ini(path: &std::path::Path) -> Result<Option<Ini>, String> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(parse_ini(&String::from_utf8_lossy(&bytes)))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Parses INI text: `[section]` headers, `key = value` or `key: value` options (keys
/// lower-cased, values trimmed), `#` / `;` comment lines; indented continuation lines (botocore's
/// nested settings such as `s3 =\n  addressing_style = path`) are skipped.
fn parse_ini(text: &str) -> Ini {
    let mut sections: Ini = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            continue;
        }
        if let Some(name) = trimmed
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
        {
            sections.push((name.to_owned(), Vec::new()));
            continue;
        }
        let Some(split) = trimmed.find(['=', ':']) else {
            continue;
        };
        if let Some((_, values)) = sections.last_mut() {
            let key = trimmed[..split].trim().to_ascii_lowercase();
            values.push((key, trimmed[split + 1..].trim().to_owned()));
        }
    }
    sections
}

/// The options of the last section called `name` (later duplicates win).
fn ini_section<'a>(ini: &'a Ini, name: &str) -> Option<&'a Vec<(String, String)>> {
    ini.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v)
}

/// Builds the HTTP client: timeouts, proxies and extra root certificates from `get`, never from
/// the process environment.
fn build_client(
    get: &dyn Fn(&str) -> Option<String>,
    https_only: bool,
    sensitive: &mut Vec<Secret>,
) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .https_only(https_only)
        .user_agent(concat!(
            "transformed-efd-butler-reader/",
            env!("CARGO_PKG_VERSION")
        ));
    let pick = |lower: &str, upper: &str| {
        get(lower)
            .map(|v| (lower.to_owned(), v))
            .or_else(|| get(upper).map(|v| (upper.to_owned(), v)))
    };
    let no_proxy =
        pick("no_proxy", "NO_PROXY").and_then(|(_, v)| reqwest::NoProxy::from_string(&v));
    for (lower, upper, https) in [
        ("https_proxy", "HTTPS_PROXY", true),
        ("http_proxy", "HTTP_PROXY", false),
    ] {
        if let Some((name, url)) = pick(lower, upper) {
            sensitive.push(Secret::new(url.clone()));
            let proxy = if https {
                reqwest::Proxy::https(&url)
            } else {
                reqwest::Proxy::http(&url)
            }
            .map_err(|_| format!("{name} is not a valid proxy URL"))?;
            builder = builder.proxy(proxy.no_proxy(no_proxy.clone()));
        }
    }
    if let Some(bundle) = get("AWS_CA_BUNDLE") {
        let pem = std::fs::read(&bundle)
            .map_err(|e| format!("cannot read AWS_CA_BUNDLE {bundle}: {e}"))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("AWS_CA_BUNDLE {bundle} is not a PEM bundle: {e}"))?;
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// The last HTTP exchange object_store made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Observation {
    /// A response with this status.
    Status(u16),
    /// No response: connection refused, timeout, dropped connection...
    Transport(HttpErrorKind),
}

#[derive(Debug, Default)]
struct Observed(Mutex<Option<Observation>>);

impl Observed {
    fn set(&self, observation: Observation) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(observation);
    }

    fn last(&self) -> Option<Observation> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Gives object_store our HTTP client, which records each exchange for [`Plan::classify`].
#[derive(Debug)]
struct Connector {
    client: reqwest::Client,
    observed: Arc<Observed>,
}

impl HttpConnector for Connector {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(ObservingClient {
            client: self.client.clone(),
            observed: Arc::clone(&self.observed),
        }))
    }
}

#[derive(Debug)]
struct ObservingClient {
    client: reqwest::Client,
    observed: Arc<Observed>,
}

#[async_trait::async_trait]
impl HttpService for ObservingClient {
    async fn call(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let result = HttpService::call(&self.client, request).await;
        self.observed.set(match &result {
            Ok(response) => Observation::Status(response.status().as_u16()),
            Err(e) => Observation::Transport(e.kind()),
        });
        result
    }
}

/// `Display` of an error and of its sources, each only when not already shown.
fn error_chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let shown = e.to_string();
        if !text.contains(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        source = e.source();
    }
    text
}

/// `Display` of the deepest source of an error (e.g. `Connection refused (os error 111)`).
fn innermost(error: &dyn StdError) -> String {
    let mut deepest = error;
    while let Some(source) = deepest.source() {
        deepest = source;
    }
    deepest.to_string()
}

/// The `<Code>` and `<Message>` of an S3 XML error body quoted in `text`.
fn s3_error_code(text: &str) -> Option<(String, String)> {
    let between = |open: &str, close: &str| {
        let start = text.find(open)? + open.len();
        let end = start + text[start..].find(close)?;
        Some(text[start..end].trim().to_owned())
    };
    let code = between("<Code>", "</Code>")?;
    Some((code, between("<Message>", "</Message>").unwrap_or_default()))
}

/// `403 Forbidden`.
fn status_text(status: u16) -> String {
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    format!("{status} {reason}").trim_end().to_owned()
}

fn truncate(text: &str) -> String {
    if text.chars().count() <= MAX_DETAIL_CHARS {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(MAX_DETAIL_CHARS).collect();
        format!("{cut}...")
    }
}

/// Redacts every sensitive string from `text`, also in its URL-encoded spellings.
fn redact_all(text: &str, sensitive: &[Secret]) -> String {
    let mut spellings: Vec<String> = Vec::new();
    for s in sensitive {
        let raw = s.expose();
        spellings.push(raw.to_owned());
        spellings.push(encode_all(raw));
        spellings.push(encode_key(raw));
    }
    // Longest first, so a secret inside a longer sensitive string does not leave pieces behind.
    spellings.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let refs: Vec<&str> = spellings.iter().map(String::as_str).collect();
    redact(text, &refs)
}

/// Python's `urllib.parse.unquote`: `%XX` sequences become bytes, invalid ones stay as they are,
/// the result is UTF-8 (invalid sequences replaced); `+` stays `+`.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A key as it appears in a URI: `%`, `?`, `#`, spaces and control characters percent-encoded,
/// so that [`S3Uri::parse`] gives the key back.
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        if matches!(c, '%' | '?' | '#') || c.is_ascii_control() || c == ' ' {
            out.push_str(&format!("%{:02X}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// Every byte except unreserved characters percent-encoded (how a secret is put in a URL).
fn encode_all(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A URI for messages, any password in its user info replaced by `***`.
fn shown_uri(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_owned();
    };
    let netloc_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (netloc, after) = rest.split_at(netloc_end);
    match netloc.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{after}")
        }
        _ => uri.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::HashMap;
    use std::io::{ErrorKind, Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::thread::JoinHandle;
    use std::time::Instant;

    use test_support::S3Server;

    const KEY: &str = "AKIDEMBARGO";
    const SECRET: &str = "s3cr3t/Key+with=special";
    const WRONG_SECRET: &str = "wr0ng/Secret+xyz";
    const BUTLER_YAML: &[u8] =
        b"registry:\n  db: postgresql://usdf-butler.slac.stanford.edu/embargo\n";

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn uri(s: &str) -> S3Uri {
        S3Uri::parse(s).unwrap()
    }

    /// A server holding `bucket/repo/butler.yaml`, accepting `KEY`/`SECRET`.
    fn server() -> S3Server {
        let s3 = S3Server::start(KEY, SECRET);
        s3.create_bucket("bucket");
        s3.put("bucket", "repo/butler.yaml", BUTLER_YAML);
        s3
    }

    /// `http://KEY:SECRET@127.0.0.1:PORT`, key and secret URL-encoded.
    fn profile_url(s3: &S3Server, key: &str, secret: &str) -> String {
        let host = s3.endpoint().replace("http://", "");
        format!("http://{}:{}@{host}", encode_all(key), encode_all(secret))
    }

    fn assert_hides(err: &S3Error, secret: &str) {
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(!text.contains(secret), "secret in {text}");
            assert!(
                !text.contains(&encode_all(secret)),
                "encoded secret in {text}"
            );
        }
    }

    #[test]
    fn uris_parse_like_lsst_resources() {
        // The expected values are what lsst-resources 30 (ResourcePath) answers.
        let u = uri("s3://embargo@bucket/repo/butler.yaml");
        assert_eq!(u.profile.as_deref(), Some("embargo"));
        assert_eq!(
            (u.bucket.as_str(), u.key.as_str()),
            ("bucket", "repo/butler.yaml")
        );
        let u = uri("s3://tenant:bkt/a%20b/c%2Fd.yaml");
        assert_eq!(
            (u.profile, u.bucket.as_str(), u.key.as_str()),
            (None, "tenant:bkt", "a b/c/d.yaml")
        );
        assert_eq!(uri("s3://p@bucket/a#frag").key, "a");
        assert_eq!(uri("s3://p@bucket/a?x=1").key, "a");
        assert_eq!(uri("S3://Bucket/Key").bucket, "Bucket");
        assert_eq!(uri("s3://bucket/a+b%zz%41").key, "a+b%zzA");
        assert_eq!(uri("s3://bucket").key, "");
        assert_eq!(uri("s3://bucket/").key, "");
        assert_eq!(uri("s3://bucket/dir/").key, "dir/");
        for bad in [
            "s3://a@b@c/k",
            "s3:///k",
            "s3://@bucket/k",
            "https://bucket/k",
            "bucket/k",
        ] {
            assert!(
                matches!(S3Uri::parse(bad), Err(S3Error::InvalidUri { .. })),
                "{bad}"
            );
        }
        // lsst-resources would take `AKID` as a profile and drop the secret: refused, not echoed.
        let err = S3Uri::parse("s3://AKID:hunter2@bucket/k")
            .unwrap_err()
            .to_string();
        assert!(err.contains("credentials do not belong"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        // Display gives back an equivalent URI.
        for s in [
            "s3://embargo@bucket/repo/butler.yaml",
            "s3://b/a%20b/100%25#x",
        ] {
            let u = uri(s);
            assert_eq!(uri(&u.to_string()), u);
        }
        assert_eq!(uri("s3://e@b/a%20b").to_string(), "s3://e@b/a%20b");
    }

    #[test]
    fn join_resolves_like_resource_path() {
        // (base, relative, key): ResourcePath's `parent().join(relative)` gives the same keys.
        let cases = [
            (
                "s3://p@b/repo/butler.yaml",
                "gen3.sqlite3",
                "repo/gen3.sqlite3",
            ),
            ("s3://b/repo/", "butler.yaml", "repo/butler.yaml"),
            ("s3://b/repo", "butler.yaml", "butler.yaml"),
            ("s3://b", "butler.yaml", "butler.yaml"),
            ("s3://b/a/b/c.yaml", "../x/y.yaml", "a/x/y.yaml"),
            ("s3://b/a/c.yaml", "../../../x", "x"),
            ("s3://b/a/c.yaml", "sub/dir/", "a/sub/dir/"),
            ("s3://b/a/c.yaml", "./x//y", "a/x/y"),
            ("s3://b/a/c.yaml", "x y%20z", "a/x y%20z"),
            ("s3://b/a/c.yaml", "/top/k", "top/k"),
        ];
        for (base, relative, key) in cases {
            let joined = uri(base).join(relative);
            assert_eq!(joined.key, key, "{base} + {relative}");
            assert_eq!(joined.bucket, uri(base).bucket);
            assert_eq!(joined.profile, uri(base).profile);
        }
    }

    #[test]
    fn endpoint_urls_split_like_lsst_resources() {
        // Expected values from lsst.resources.s3utils._parse_endpoint_config.
        let e = parse_endpoint("V", "http://KEY:SECRET@127.0.0.1:9000").unwrap();
        assert_eq!(e.url, "http://127.0.0.1:9000");
        let (key, secret) = e.credentials.unwrap();
        assert_eq!((key.as_str(), secret.expose()), ("KEY", "SECRET"));
        let e = parse_endpoint(
            "V",
            "https://EMB%40RGO%3AK+1:p%40ss%3Aw%2Frd+%252F%20%C3%A9~@s3.example.org",
        )
        .unwrap();
        let (key, secret) = e.credentials.unwrap();
        assert_eq!(
            (key.as_str(), secret.expose()),
            ("EMB@RGO:K+1", "p@ss:w/rd+%2F é~")
        );
        let e = parse_endpoint("V", "https://k:s@h@host").unwrap();
        assert_eq!(
            (e.url.as_str(), e.credentials.unwrap().1.expose()),
            ("https://host", "s@h")
        );
        let e = parse_endpoint("V", "https://Host.Example.ORG:443/prefix/").unwrap();
        assert_eq!(
            (e.url.as_str(), e.credentials),
            ("https://host.example.org:443/prefix", None)
        );
        assert_eq!(
            parse_endpoint("V", "https://[::1]:9000").unwrap().url,
            "https://[::1]:9000"
        );
        assert_eq!(
            parse_endpoint("V", "https://s3dfrgw.slac.stanford.edu/")
                .unwrap()
                .url,
            "https://s3dfrgw.slac.stanford.edu"
        );
        // Malformed values: the variable is named, its value (with the secret) never shown.
        for bad in [
            "https://a:hunter2:c@host",
            "https://hunter2@host",
            "https://:hunter2@host",
            "s3.example.org",
            "ftp://k:hunter2@host",
            "https://k:hunter2@host:port",
            "https://k:hunter2@host:99999",
            "https://k:hunter2@[::1]:65536",
            "https://k:hunter2@",
        ] {
            let err = parse_endpoint("LSST_RESOURCES_S3_PROFILE_x", bad).unwrap_err();
            assert!(err.contains("LSST_RESOURCES_S3_PROFILE_x"), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn credentials_region_and_endpoint_precedence() {
        let dir = tempfile::tempdir().unwrap();
        let aws = dir.path().join(".aws");
        std::fs::create_dir(&aws).unwrap();
        std::fs::write(
            aws.join("credentials"),
            "# comment\n[default]\naws_access_key_id = DEFAULTKEY\naws_secret_access_key = dsecret\n\n\
             [embargo]\nAWS_ACCESS_KEY_ID=EMBKEY\naws_secret_access_key: esecret\naws_session_token = etoken\n\
             s3 =\n    addressing_style = path\n",
        )
        .unwrap();
        std::fs::write(
            aws.join("config"),
            "[default]\nregion = eu-west-1\n[profile cfg]\nregion = us-west-2\n\
             aws_access_key_id = CFGKEY\naws_secret_access_key = csecret\n",
        )
        .unwrap();
        let home = dir.path().to_str().unwrap();
        let plan = |u: &str, pairs: &[(&str, &str)]| Plan::resolve(&uri(u), &env_of(pairs));
        let key_of = |p: &Plan| match &p.auth {
            Auth::Static { key_id, .. } => key_id.clone(),
            Auth::Anonymous => "anonymous".to_owned(),
        };

        // Profile URL with credentials beats everything, endpoint included.
        let p = plan(
            "s3://embargo@b/k",
            &[
                ("HOME", home),
                (
                    "LSST_RESOURCES_S3_PROFILE_embargo",
                    "https://PKEY:psecret@s3.example.org",
                ),
                ("S3_ENDPOINT_URL", "http://other:9000"),
                ("AWS_ACCESS_KEY_ID", "ENVKEY"),
                ("AWS_SECRET_ACCESS_KEY", "envsecret"),
            ],
        )
        .unwrap();
        assert_eq!(
            (key_of(&p), p.endpoint.as_deref()),
            ("PKEY".into(), Some("https://s3.example.org"))
        );
        // boto3 then uses the default session: region from [default] of the config file.
        assert_eq!(p.region, "eu-west-1");

        // Named profile without credentials in its variable: its section; AWS_* ignored.
        let p = plan(
            "s3://embargo@b/k",
            &[
                ("HOME", home),
                (
                    "LSST_RESOURCES_S3_PROFILE_embargo",
                    "https://s3.example.org",
                ),
                ("AWS_ACCESS_KEY_ID", "ENVKEY"),
                ("AWS_SECRET_ACCESS_KEY", "envsecret"),
                ("AWS_DEFAULT_REGION", "ca-central-1"),
                ("AWS_REGION", "ap-south-1"),
            ],
        )
        .unwrap();
        assert_eq!(key_of(&p), "EMBKEY");
        assert!(matches!(&p.auth, Auth::Static { token: Some(t), .. } if t.expose() == "etoken"));
        assert_eq!(p.region, "ca-central-1");

        // A named profile whose variable is unset: S3_ENDPOINT_URL gives the endpoint.
        let p = plan(
            "s3://cfg@b/k",
            &[("HOME", home), ("S3_ENDPOINT_URL", "http://127.0.0.1:1")],
        )
        .unwrap();
        assert_eq!(
            (key_of(&p), p.region.as_str()),
            ("CFGKEY".into(), "us-west-2")
        );
        assert_eq!(p.endpoint.as_deref(), Some("http://127.0.0.1:1"));

        // No profile: AWS_* before the credentials file's [default], as boto3.
        let env_vars = [
            ("HOME", home),
            ("AWS_ACCESS_KEY_ID", "ENVKEY"),
            ("AWS_SECRET_ACCESS_KEY", "envsecret"),
        ];
        let p = plan("s3://b/k", &env_vars).unwrap();
        assert_eq!((key_of(&p), p.endpoint.as_deref()), ("ENVKEY".into(), None));
        assert_eq!(p.endpoint_shown, "https://s3.eu-west-1.amazonaws.com (AWS)");
        let p = plan("s3://b/k", &[("HOME", home), ("AWS_REGION", "ap-south-1")]).unwrap();
        assert_eq!(
            (key_of(&p), p.region.as_str()),
            ("DEFAULTKEY".into(), "ap-south-1")
        );
        let p = plan("s3://b/k", &[("HOME", home), ("AWS_PROFILE", "embargo")]).unwrap();
        assert_eq!(key_of(&p), "EMBKEY");
        // Explicit file locations, `~` expanded with HOME from env.
        let p = plan(
            "s3://b/k",
            &[
                ("HOME", home),
                ("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/config"),
                ("AWS_CONFIG_FILE", "/nonexistent"),
            ],
        );
        assert!(matches!(p, Err(S3Error::NoCredentials { .. })), "{p:?}");
        let p = plan("s3://b/k", &[]);
        assert!(matches!(p, Err(S3Error::NoCredentials { .. })), "{p:?}");
        let p = plan("s3://b/k", &[]);
        assert!(p.unwrap_err().to_string().contains("HOME"));

        // Anonymous access: nothing read, nothing signed.
        let p = plan("s3://embargo@b/k", &[("AWS_SKIP_SIGNATURE", "true")]).unwrap();
        assert_eq!(
            (key_of(&p), p.region.as_str()),
            ("anonymous".into(), "us-east-1")
        );

        // Partial credentials and odd buckets are clear errors.
        let p = plan("s3://b/k", &[("AWS_ACCESS_KEY_ID", "ENVKEY")])
            .unwrap_err()
            .to_string();
        assert!(p.contains("AWS_SECRET_ACCESS_KEY is not"), "{p}");
        let e = [("AWS_SKIP_SIGNATURE", "1")];
        assert!(matches!(
            plan("s3://tenant:b/k", &e),
            Err(S3Error::InvalidUri { .. })
        ));
        assert!(
            plan(
                "s3://tenant:b/k",
                &[e[0], ("LSST_DISABLE_BUCKET_VALIDATION", "1")]
            )
            .is_ok()
        );
        assert!(matches!(
            plan("s3://b/dir/", &e),
            Err(S3Error::InvalidUri { .. })
        ));
        assert!(matches!(
            plan("s3://b/a//b", &e),
            Err(S3Error::InvalidUri { .. })
        ));
    }

    #[tokio::test]
    async fn fetch_with_profile_variable() {
        let s3 = server();
        let env = env_of(&[
            (
                "LSST_RESOURCES_S3_PROFILE_embargo",
                &profile_url(&s3, KEY, SECRET),
            ),
            // Both lose to the profile variable.
            ("S3_ENDPOINT_URL", "http://127.0.0.1:1"),
            ("AWS_ACCESS_KEY_ID", "WRONGKEY"),
            ("AWS_SECRET_ACCESS_KEY", WRONG_SECRET),
        ]);
        let bytes = fetch(&uri("s3://embargo@bucket/repo/butler.yaml"), &env)
            .await
            .unwrap();
        assert_eq!(bytes, BUTLER_YAML);
        // The future is Send: it can be spawned.
        let u = uri("s3://embargo@bucket/repo/butler.yaml");
        let spawned = tokio::spawn(fetch(&u, &env)).await.unwrap().unwrap();
        assert_eq!(spawned, BUTLER_YAML);
    }

    #[tokio::test]
    async fn fetch_with_url_encoded_key_and_secret() {
        let (key, secret) = ("EMB@RGO:K+1", "p@ss:w/rd+%2F é~#?");
        let s3 = S3Server::start(key, secret);
        s3.create_bucket("bucket");
        s3.put("bucket", "butler.yaml", BUTLER_YAML);
        let host = s3.endpoint().replace("http://", "");
        // `+` left as is: unquote keeps it (it is not a space).
        let url = format!("http://EMB%40RGO%3AK+1:p%40ss%3Aw%2Frd+%252F%20%C3%A9~%23%3F@{host}");
        let env = env_of(&[("LSST_RESOURCES_S3_PROFILE_embargo", &url)]);
        let bytes = fetch(&uri("s3://embargo@bucket/butler.yaml"), &env)
            .await
            .unwrap();
        assert_eq!(bytes, BUTLER_YAML);
    }

    #[tokio::test]
    async fn fetch_with_endpoint_and_aws_variables() {
        let s3 = server();
        // A [default] section with wrong credentials: the AWS_* variables come first, as in boto3.
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".aws")).unwrap();
        std::fs::write(
            home.path().join(".aws/credentials"),
            format!(
                "[default]\naws_access_key_id = WRONGKEY\naws_secret_access_key = {WRONG_SECRET}\n"
            ),
        )
        .unwrap();
        let env = env_of(&[
            ("HOME", home.path().to_str().unwrap()),
            ("S3_ENDPOINT_URL", &s3.endpoint()),
            ("AWS_ACCESS_KEY_ID", KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("AWS_DEFAULT_REGION", "us-west-2"),
        ]);
        let bytes = fetch(&uri("s3://bucket/repo/butler.yaml"), &env)
            .await
            .unwrap();
        assert_eq!(bytes, BUTLER_YAML);
    }

    #[tokio::test]
    async fn fetch_with_credentials_file() {
        let s3 = server();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        std::fs::write(
            &file,
            format!(
                "[default]\naws_access_key_id = WRONGKEY\naws_secret_access_key = {WRONG_SECRET}\n\
                 [embargo]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n"
            ),
        )
        .unwrap();
        let env = env_of(&[
            ("LSST_RESOURCES_S3_PROFILE_embargo", &s3.endpoint()),
            ("AWS_SHARED_CREDENTIALS_FILE", file.to_str().unwrap()),
            // Ignored for a named profile, as in boto3.
            ("AWS_ACCESS_KEY_ID", "WRONGKEY"),
            ("AWS_SECRET_ACCESS_KEY", WRONG_SECRET),
        ]);
        let bytes = fetch(&uri("s3://embargo@bucket/repo/butler.yaml"), &env)
            .await
            .unwrap();
        assert_eq!(bytes, BUTLER_YAML);

        // Without a profile: [default] of $HOME/.aws/credentials.
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".aws")).unwrap();
        std::fs::write(
            home.path().join(".aws/credentials"),
            format!("[default]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n"),
        )
        .unwrap();
        let env = env_of(&[
            ("HOME", home.path().to_str().unwrap()),
            ("S3_ENDPOINT_URL", &s3.endpoint()),
        ]);
        let bytes = fetch(&uri("s3://bucket/repo/butler.yaml"), &env)
            .await
            .unwrap();
        assert_eq!(bytes, BUTLER_YAML);
    }

    #[tokio::test]
    async fn rejected_credentials_are_permanent_and_name_their_source() {
        let s3 = server();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        std::fs::write(
            &file,
            format!(
                "[embargo]\naws_access_key_id = {KEY}\naws_secret_access_key = {WRONG_SECRET}\n"
            ),
        )
        .unwrap();
        let file = file.to_str().unwrap();
        let cases = [
            (
                "s3://embargo@bucket/repo/butler.yaml",
                vec![(
                    "LSST_RESOURCES_S3_PROFILE_embargo",
                    profile_url(&s3, KEY, WRONG_SECRET),
                )],
                "LSST_RESOURCES_S3_PROFILE_embargo",
            ),
            (
                "s3://embargo@bucket/repo/butler.yaml",
                vec![
                    ("LSST_RESOURCES_S3_PROFILE_embargo", s3.endpoint()),
                    ("AWS_SHARED_CREDENTIALS_FILE", file.to_owned()),
                ],
                "section [embargo] of",
            ),
            (
                "s3://bucket/repo/butler.yaml",
                vec![
                    ("S3_ENDPOINT_URL", s3.endpoint()),
                    ("AWS_ACCESS_KEY_ID", KEY.to_owned()),
                    ("AWS_SECRET_ACCESS_KEY", WRONG_SECRET.to_owned()),
                ],
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
            ),
            // An access key the server does not know.
            (
                "s3://bucket/repo/butler.yaml",
                vec![
                    ("S3_ENDPOINT_URL", s3.endpoint()),
                    ("AWS_ACCESS_KEY_ID", "UNKNOWNKEY".to_owned()),
                    ("AWS_SECRET_ACCESS_KEY", WRONG_SECRET.to_owned()),
                ],
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
            ),
        ];
        for (u, pairs, source) in cases {
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let err = fetch(&uri(u), &env_of(&pairs)).await.unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, S3Error::Denied { .. }), "{err:?}");
            assert!(!err.is_transient());
            assert!(text.contains("rejected the credentials from"), "{text}");
            assert!(text.contains(source), "{text}");
            assert!(text.contains(&s3.endpoint()), "{text}");
            assert!(text.contains("403"), "{text}");
            assert_hides(&err, WRONG_SECRET);
            assert_hides(&err, SECRET);
        }
    }

    #[tokio::test]
    async fn missing_object_or_bucket_is_not_found() {
        let s3 = server();
        let env = env_of(&[(
            "LSST_RESOURCES_S3_PROFILE_embargo",
            &profile_url(&s3, KEY, SECRET),
        )]);
        for (u, object) in [
            (
                "s3://embargo@bucket/repo/missing.yaml",
                "s3://bucket/repo/missing.yaml",
            ),
            (
                "s3://embargo@nobucket/butler.yaml",
                "s3://nobucket/butler.yaml",
            ),
        ] {
            let err = fetch(&uri(u), &env).await.unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, S3Error::NotFound { .. }), "{err:?}");
            assert!(!err.is_transient());
            assert!(
                text.contains(object) && text.contains("not found"),
                "{text}"
            );
            assert!(text.contains(&s3.endpoint()), "{text}");
            assert_hides(&err, SECRET);
        }
    }

    #[tokio::test]
    async fn unreachable_endpoint_is_transient() {
        let port = test_support::free_port();
        let env = env_of(&[(
            "LSST_RESOURCES_S3_PROFILE_embargo",
            &format!("http://{KEY}:{}@127.0.0.1:{port}", encode_all(SECRET)),
        )]);
        let err = fetch(&uri("s3://embargo@bucket/repo/butler.yaml"), &env)
            .await
            .unwrap_err();
        assert!(matches!(err, S3Error::Request { .. }), "{err:?}");
        assert!(err.is_transient(), "{err:?}");
        assert!(
            err.to_string()
                .contains(&format!("http://127.0.0.1:{port}")),
            "{err}"
        );
        assert_hides(&err, SECRET);
    }

    #[tokio::test]
    async fn no_credentials_fails_before_any_request() {
        // The endpoint is a socket we hold: nothing may connect to it.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let home = tempfile::tempdir().unwrap();
        let home = home.path().to_str().unwrap();
        let env = env_of(&[("S3_ENDPOINT_URL", &endpoint), ("HOME", home)]);
        let err = fetch(&uri("s3://embargo@bucket/repo/butler.yaml"), &env)
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, S3Error::NoCredentials { .. }), "{err:?}");
        assert!(!err.is_transient());
        for source in [
            "LSST_RESOURCES_S3_PROFILE_embargo (not set)",
            "S3_ENDPOINT_URL (no KEY:SECRET@ in it)",
            &format!("section [embargo] of {home}/.aws/credentials (no such file)"),
            &format!("section [profile embargo] of {home}/.aws/config (no such file)"),
            "AWS_SKIP_SIGNATURE",
            "instance-metadata service is never asked",
        ] {
            assert!(text.contains(source), "{source} not in {text}");
        }
        let err = fetch(
            &uri("s3://bucket/repo/butler.yaml"),
            &env_of(&[("S3_ENDPOINT_URL", &endpoint)]),
        )
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (not set)"),
            "{text}"
        );
        assert!(text.contains("neither it nor HOME is set"), "{text}");
        // Nothing connected: no request was made, to the endpoint or anywhere else.
        match listener.accept() {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            other => panic!("a request was made: {other:?}"),
        }
    }

    #[tokio::test]
    async fn anonymous_access_sends_unsigned_requests() {
        let public = S3Server::start_public();
        public.create_bucket("public");
        public.put("public", "butler.yaml", BUTLER_YAML);
        let env = env_of(&[
            ("S3_ENDPOINT_URL", &public.endpoint()),
            ("AWS_SKIP_SIGNATURE", "true"),
        ]);
        assert_eq!(
            fetch(&uri("s3://public/butler.yaml"), &env).await.unwrap(),
            BUTLER_YAML
        );

        // A server that wants signatures refuses them, permanently.
        let s3 = server();
        let env = env_of(&[
            ("S3_ENDPOINT_URL", &s3.endpoint()),
            ("AWS_SKIP_SIGNATURE", "true"),
        ]);
        let err = fetch(&uri("s3://bucket/repo/butler.yaml"), &env)
            .await
            .unwrap_err();
        assert!(matches!(err, S3Error::Denied { .. }), "{err:?}");
        assert!(err.to_string().contains("anonymous access"), "{err}");
    }

    /// Serves every connection with the same HTTP response until dropped (at most 30 s).
    struct FixedServer {
        endpoint: String,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<usize>>,
    }

    impl FixedServer {
        fn start(status: &'static str, body: &'static str) -> FixedServer {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            let endpoint = format!("http://{}", listener.local_addr().unwrap());
            let stop = Arc::new(AtomicBool::new(false));
            let stopped = Arc::clone(&stop);
            let thread = std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(30);
                let mut served = 0;
                while !stopped.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let Ok((mut socket, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    socket.set_nonblocking(false).unwrap();
                    socket
                        .set_read_timeout(Some(Duration::from_secs(5)))
                        .unwrap();
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let response = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
                         Connection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes());
                    served += 1;
                }
                served
            });
            FixedServer {
                endpoint,
                stop,
                thread: Some(thread),
            }
        }

        fn stop(mut self) -> usize {
            self.stop.store(true, Ordering::Relaxed);
            self.thread.take().unwrap().join().unwrap()
        }
    }

    #[tokio::test]
    async fn server_errors_are_transient_client_errors_permanent() {
        let slow_down = "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code>\
                         <Message>Please reduce your request rate.</Message></Error>";
        let bad = "<?xml version=\"1.0\"?><Error><Code>InvalidArgument</Code>\
                   <Message>Invalid argument.</Message></Error>";
        for (status, body, transient, code) in [
            (
                "503 Service Unavailable",
                slow_down,
                true,
                "503 Service Unavailable",
            ),
            (
                "500 Internal Server Error",
                "",
                true,
                "500 Internal Server Error",
            ),
            ("400 Bad Request", bad, false, "InvalidArgument"),
        ] {
            let server = FixedServer::start(status, body);
            let env = env_of(&[
                ("S3_ENDPOINT_URL", &server.endpoint),
                ("AWS_ACCESS_KEY_ID", KEY),
                ("AWS_SECRET_ACCESS_KEY", SECRET),
            ]);
            let err = fetch(&uri("s3://bucket/butler.yaml"), &env)
                .await
                .unwrap_err();
            let served = server.stop();
            assert!(matches!(err, S3Error::Request { .. }), "{err:?}");
            assert_eq!(err.is_transient(), transient, "{err}");
            assert!(err.to_string().contains(code), "{err}");
            assert_hides(&err, SECRET);
            // Transient answers were retried by object_store, permanent ones not.
            let expected = if transient { MAX_RETRIES + 1 } else { 1 };
            assert_eq!(served, expected, "{status}");
        }
    }

    #[test]
    fn ini_and_percent_decoding() {
        let ini = parse_ini(
            "; c\n[a]\nKey = v = w\nother: x\n  nested = y\n[profile b]\nk=\n[a]\nkey = later\n",
        );
        assert_eq!(
            ini_section(&ini, "a").unwrap(),
            &vec![("key".to_owned(), "later".to_owned())]
        );
        assert_eq!(
            ini_section(&ini, "profile b").unwrap(),
            &vec![("k".to_owned(), String::new())]
        );
        assert_eq!(
            ini[0].1,
            vec![("key".into(), "v = w".into()), ("other".into(), "x".into())]
        );
        assert_eq!(percent_decode("a%2Fb+%zz%4"), "a/b+%zz%4");
        assert_eq!(percent_decode("%C3%A9%ff"), "é\u{fffd}");
        assert_eq!(
            redact_all("x s%2Fe y s/e", &[Secret::new("s/e")]),
            "x *** y ***"
        );
    }
}
