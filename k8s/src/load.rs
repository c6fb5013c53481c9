//! Reading manifests: YAML files (several documents each, `kind: List` too) or a
//! directory of them, into the typed objects the translation uses. Objects of other
//! kinds are counted and skipped; a document that does not parse as its kind is an
//! error naming the file and the document.

use k8s_openapi::api::core::v1::{Endpoints, Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Why manifests could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        /// Which.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A document is not valid YAML, or not a valid object of its kind.
    #[error("{origin}, document {document}: {message}")]
    Invalid {
        /// The file (or `<text>`).
        origin: String,
        /// The document's number in it, from 1.
        document: usize,
        /// What is wrong.
        message: String,
    },
}

/// The objects of a set of manifests.
#[derive(Debug, Clone, Default)]
pub struct Manifests {
    /// Namespaces.
    pub namespaces: Vec<Namespace>,
    /// Pods.
    pub pods: Vec<Pod>,
    /// Services.
    pub services: Vec<Service>,
    /// Endpoints (the backends of services without a selector).
    pub endpoints: Vec<Endpoints>,
    /// EndpointSlices (likewise).
    pub endpoint_slices: Vec<EndpointSlice>,
    /// Network policies.
    pub network_policies: Vec<NetworkPolicy>,
    /// Ingresses.
    pub ingresses: Vec<k8s_openapi::api::networking::v1::Ingress>,
    /// Objects of kinds the translation does not use, as `kind namespace/name`.
    pub skipped: Vec<String>,
}

impl Manifests {
    /// Reads a YAML file, or every `.yaml` / `.yml` / `.json` file of a directory
    /// (not recursing, in name order).
    pub fn from_path(path: &Path) -> Result<Self, LoadError> {
        let io = |source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut out = Manifests::default();
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(io)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml" || e == "json"))
                .collect();
            files.sort();
            for file in files {
                out.add_file(&file)?;
            }
        } else {
            out.add_file(path)?;
        }
        Ok(out)
    }

    fn add_file(&mut self, file: &Path) -> Result<(), LoadError> {
        let text = std::fs::read_to_string(file).map_err(|source| LoadError::Io {
            path: file.to_path_buf(),
            source,
        })?;
        self.add_text(&file.display().to_string(), &text)
    }

    /// Reads the documents of `text` (named `origin` in errors).
    pub fn from_text(origin: &str, text: &str) -> Result<Self, LoadError> {
        let mut out = Manifests::default();
        out.add_text(origin, text)?;
        Ok(out)
    }

    fn add_text(&mut self, origin: &str, text: &str) -> Result<(), LoadError> {
        for (i, document) in serde_norway::Deserializer::from_str(text).enumerate() {
            let invalid = |message: String| LoadError::Invalid {
                origin: origin.to_string(),
                document: i + 1,
                message,
            };
            let value = serde_json::Value::deserialize(document).map_err(|e| invalid(e.to_string()))?;
            self.add_value(value).map_err(invalid)?;
        }
        Ok(())
    }

    fn add_value(&mut self, value: serde_json::Value) -> Result<(), String> {
        if value.is_null() {
            return Ok(()); // an empty document
        }
        let kind = value
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or_default()
            .to_string();
        fn typed<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, String> {
            serde_json::from_value(v).map_err(|e| e.to_string())
        }
        match kind.as_str() {
            "List" => {
                let items = value
                    .get("items")
                    .and_then(|i| i.as_array())
                    .cloned()
                    .unwrap_or_default();
                for item in items {
                    self.add_value(item)?;
                }
            }
            "Namespace" => self.namespaces.push(typed(value)?),
            "Pod" => self.pods.push(typed(value)?),
            "Service" => self.services.push(typed(value)?),
            "Endpoints" => self.endpoints.push(typed(value)?),
            "EndpointSlice" => self.endpoint_slices.push(typed(value)?),
            "NetworkPolicy" => self.network_policies.push(typed(value)?),
            "Ingress" if value.get("apiVersion").and_then(|v| v.as_str()) != Some("networking.k8s.io/v1") => {
                return Err("Ingress: only apiVersion networking.k8s.io/v1 is read (serviceName/servicePort are v1beta1's: write service.name/service.port)".into())
            }
            "Ingress" => self.ingresses.push(typed(value)?),
            "" => return Err("no kind".into()),
            other => {
                let meta = value.get("metadata");
                let field = |f: &str| meta.and_then(|m| m.get(f)).and_then(|v| v.as_str()).unwrap_or("");
                self.skipped
                    .push(format!("{other} {}/{}", field("namespace"), field("name")));
            }
        }
        Ok(())
    }
}
