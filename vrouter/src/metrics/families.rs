//! Writing one metric family from values read at scrape time: the one place that
//! turns `(labels, value)` pairs into prometheus-client's constant metrics.

use prometheus_client::encoding::{DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;
use std::fmt;

/// A series' labels, in order.
pub type Labels = Vec<(&'static str, String)>;

/// No labels: the family has one series.
pub fn none() -> Labels {
    Vec::new()
}

/// Writes a family of `kind` whose series are `series`, each value made a metric by
/// `metric`.
fn family<V, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    (name, help, unit, kind): (&str, &str, Option<Unit>, MetricType),
    series: impl IntoIterator<Item = (Labels, V)>,
    metric: impl Fn(V) -> M,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, unit.as_ref(), kind)?;
    for (labels, value) in series {
        // An empty label set writes no braces: one series without labels.
        metric(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Writes a counter family (its name gets `_total`, after the unit if any).
pub fn counter<V: EncodeCounterValue + fmt::Debug>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    series: impl IntoIterator<Item = (Labels, V)>,
) -> fmt::Result {
    family(
        encoder,
        (name, help, unit, MetricType::Counter),
        series,
        ConstCounter::new,
    )
}

/// Writes a gauge family.
pub fn gauge<V: EncodeGaugeValue + fmt::Debug>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    series: impl IntoIterator<Item = (Labels, V)>,
) -> fmt::Result {
    family(encoder, (name, help, unit, MetricType::Gauge), series, ConstGauge::new)
}

/// A protocol number as a label value.
pub fn protocol(proto: u8) -> String {
    match proto {
        6 => "tcp".into(),
        17 => "udp".into(),
        132 => "sctp".into(),
        1 => "icmp".into(),
        58 => "icmpv6".into(),
        other => other.to_string(),
    }
}
