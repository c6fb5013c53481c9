//! The Prometheus endpoint: `GET /metrics` over HTTP, served by the control side's
//! runtime. Every value is read when Prometheus asks (the workers' counters, the
//! published snapshot, the flow table, the channels), so the forwarding path pays
//! nothing beyond the counters it keeps anyway; only the control side's timing
//! histograms ([`crate::control::timing`]) are recorded as things happen.
//!
//! Names follow Prometheus' conventions: the `vrouter_` prefix, base units in the
//! name (`_bytes`, `_seconds`), `_total` on counters. The text is the Prometheus text
//! format (0.0.4), or OpenMetrics when the scraper asks for it.

mod control;
mod dataplane;
mod families;
mod server;

use crate::control::task::ControlHandle;
use crate::control::timing::ControlTimings;
use crate::control::views::Views;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;
pub use server::serve;
use std::sync::Arc;

/// The content type of the Prometheus text format.
pub const PROMETHEUS_TEXT: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
/// The content type of OpenMetrics text.
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What a scrape reads: the views and the control task's handle.
#[derive(Debug)]
struct Sources {
    views: Arc<Views>,
    control: ControlHandle,
}

impl Collector for Sources {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        dataplane::encode(&self.views, &mut encoder)?;
        control::encode(&self.views, &self.control, &mut encoder)
    }
}

/// Every metric of a running vrouter.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// The metrics of the vrouter these handles belong to.
    pub fn new(views: Arc<Views>, control: ControlHandle, timings: &ControlTimings) -> Self {
        let mut registry = Registry::with_prefix("vrouter");
        timings.register(&mut registry);
        registry.register_collector(Box::new(Sources { views, control }));
        Self { registry }
    }

    /// The exposition text: OpenMetrics if `openmetrics`, else the Prometheus text
    /// format.
    pub fn render(&self, openmetrics: bool) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(64 * 1024);
        if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
