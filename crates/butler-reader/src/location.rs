//! Finding a repository's `butler.yaml`, from what `Butler(repo)` accepts in production.
//!
//! - a directory holding `butler.yaml`;
//! - a path or `file://` URL to a config file;
//! - `s3://[PROFILE@]bucket/key/butler.yaml` (or a bucket "directory", to which `butler.yaml` is
//!   appended);
//! - a label, looked up in the repository index named by `DAF_BUTLER_REPOSITORY_INDEX` (a YAML or
//!   JSON mapping of labels to URIs, itself local or on S3).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::ButlerError;
use crate::s3::{self, S3Uri};

/// Where a config file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConfigUri {
    /// A local file.
    Local(PathBuf),
    /// An S3 object.
    S3(S3Uri),
}

impl ConfigUri {
    /// The directory holding the file, as daf_butler's `<butlerRoot>` (no trailing slash).
    pub(crate) fn directory(&self) -> String {
        match self {
            ConfigUri::Local(p) => p
                .parent()
                .map_or_else(|| ".".to_owned(), |d| d.display().to_string()),
            ConfigUri::S3(u) => {
                let dir = u.key.rsplit_once('/').map_or("", |(d, _)| d);
                let profile = u
                    .profile
                    .as_deref()
                    .map(|p| format!("{p}@"))
                    .unwrap_or_default();
                if dir.is_empty() {
                    format!("s3://{profile}{}", u.bucket)
                } else {
                    format!("s3://{profile}{}/{dir}", u.bucket)
                }
            }
        }
    }

    /// The file as a string for messages.
    pub(crate) fn shown(&self) -> String {
        match self {
            ConfigUri::Local(p) => p.display().to_string(),
            ConfigUri::S3(u) => format!("s3://{}/{}", u.bucket, u.key),
        }
    }

    /// Reads the file.
    pub(crate) async fn read(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<u8>, ButlerError> {
        match self {
            ConfigUri::Local(p) => std::fs::read(p).map_err(|e| ButlerError::Config {
                path: p.display().to_string(),
                message: format!("cannot read: {e}"),
            }),
            ConfigUri::S3(u) => Ok(s3::fetch(u, env).await?),
        }
    }
}

/// Resolves a repository string to its config file.
pub(crate) async fn resolve(
    repo: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ConfigUri, ButlerError> {
    resolve_inner(repo, env, true).await
}

async fn resolve_inner(
    repo: &str,
    env: &dyn Fn(&str) -> Option<String>,
    allow_label: bool,
) -> Result<ConfigUri, ButlerError> {
    let location = |message: String| ButlerError::Location {
        repo: repo.to_owned(),
        message,
    };
    let repo = repo.trim();
    if repo.is_empty() {
        return Err(location("empty repository".to_owned()));
    }
    if repo.starts_with("s3://") {
        let uri = S3Uri::parse(repo)?;
        return Ok(ConfigUri::S3(if is_config_file(&uri.key) {
            uri
        } else {
            // A "directory": make it one, so the join lands inside it.
            let dir = S3Uri {
                key: format!("{}/", uri.key.trim_end_matches('/')),
                ..uri
            };
            dir.join("butler.yaml")
        }));
    }
    let local = if let Some(rest) = repo.strip_prefix("file://") {
        Some(PathBuf::from(rest))
    } else if repo.contains("://") {
        let scheme = repo.split("://").next().unwrap_or_default();
        return Err(location(format!(
            "unsupported scheme `{scheme}` (use a path, file://, s3:// or a label)"
        )));
    } else {
        Some(PathBuf::from(repo))
    };
    if let Some(path) = local {
        if path.is_dir() {
            return Ok(ConfigUri::Local(path.join("butler.yaml")));
        }
        if path.is_file() {
            return Ok(ConfigUri::Local(path));
        }
        if allow_label && !repo.contains('/') && !repo.starts_with("file://") {
            return resolve_label(repo, env).await;
        }
        return Err(location(format!(
            "no such file or directory: {}",
            path.display()
        )));
    }
    Err(location("cannot resolve".to_owned()))
}

fn is_config_file(key: &str) -> bool {
    key.ends_with(".yaml") || key.ends_with(".yml") || key.ends_with(".json")
}

async fn resolve_label(
    label: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ConfigUri, ButlerError> {
    let Some(index) = env("DAF_BUTLER_REPOSITORY_INDEX").filter(|v| !v.trim().is_empty()) else {
        return Err(ButlerError::Location {
            repo: label.to_owned(),
            message:
                "not a path, and DAF_BUTLER_REPOSITORY_INDEX is not set to look it up as a label"
                    .to_owned(),
        });
    };
    let index = index.trim().to_owned();
    let index_uri = if index.starts_with("s3://") {
        ConfigUri::S3(S3Uri::parse(&index)?)
    } else {
        ConfigUri::Local(PathBuf::from(
            index.strip_prefix("file://").unwrap_or(&index),
        ))
    };
    let bytes = index_uri.read(env).await?;
    let labels = parse_index(&bytes, &index_uri.shown())?;
    let Some(target) = labels.get(label) else {
        let known: Vec<&str> = labels.keys().map(String::as_str).collect();
        return Err(ButlerError::Location {
            repo: label.to_owned(),
            message: format!(
                "not a path, nor a label of the repository index {} (labels: {})",
                index_uri.shown(),
                known.join(", ")
            ),
        });
    };
    Box::pin(resolve_inner(target, env, false)).await
}

/// Parses a repository index: a YAML (or JSON, a subset of YAML) mapping of label to URI.
pub(crate) fn parse_index(
    bytes: &[u8],
    shown: &str,
) -> Result<BTreeMap<String, String>, ButlerError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ButlerError::Config {
        path: shown.to_owned(),
        message: "not UTF-8".to_owned(),
    })?;
    serde_norway::from_str::<BTreeMap<String, String>>(text).map_err(|e| ButlerError::Config {
        path: shown.to_owned(),
        message: format!("not a mapping of repository labels to URIs: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn directories_files_urls_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        std::fs::write(
            repo.join("butler.yaml"),
            "registry: {db: 'sqlite:///<butlerRoot>/gen3.sqlite3'}\n",
        )
        .unwrap();
        let none = |_: &str| None;
        let want = ConfigUri::Local(repo.join("butler.yaml"));
        assert_eq!(resolve(repo.to_str().unwrap(), &none).await.unwrap(), want);
        assert_eq!(
            resolve(repo.join("butler.yaml").to_str().unwrap(), &none)
                .await
                .unwrap(),
            want
        );
        assert_eq!(
            resolve(&format!("file://{}", repo.display()), &none)
                .await
                .unwrap(),
            want
        );
        let index = dir.path().join("repos.yaml");
        std::fs::write(
            &index,
            format!(
                "embargo: {}\nother: s3://bucket/x/butler.yaml\n",
                repo.display()
            ),
        )
        .unwrap();
        let shown = index.to_str().unwrap().to_owned();
        let env = move |k: &str| (k == "DAF_BUTLER_REPOSITORY_INDEX").then(|| shown.clone());
        assert_eq!(resolve("embargo", &env).await.unwrap(), want);
        match resolve("other", &env).await.unwrap() {
            ConfigUri::S3(u) => assert_eq!(
                (u.bucket.as_str(), u.key.as_str()),
                ("bucket", "x/butler.yaml")
            ),
            other => panic!("{other:?}"),
        }
        let err = resolve("nope", &env).await.unwrap_err().to_string();
        assert!(err.contains("labels: embargo, other"), "{err}");
        let err = resolve("nope", &none).await.unwrap_err().to_string();
        assert!(err.contains("DAF_BUTLER_REPOSITORY_INDEX"), "{err}");
        let json = dir.path().join("repos.json");
        std::fs::write(&json, format!("{{\"main\": \"{}\"}}", repo.display())).unwrap();
        let shown = json.to_str().unwrap().to_owned();
        let env = move |k: &str| (k == "DAF_BUTLER_REPOSITORY_INDEX").then(|| shown.clone());
        assert_eq!(resolve("main", &env).await.unwrap(), want);
    }

    #[test]
    fn butler_root_of_local_and_s3_files() {
        assert_eq!(
            ConfigUri::Local("/a/b/butler.yaml".into()).directory(),
            "/a/b"
        );
        let s3 = ConfigUri::S3(S3Uri::parse("s3://embargo@bucket/dir/butler.yaml").unwrap());
        assert_eq!(s3.directory(), "s3://embargo@bucket/dir");
    }
}
