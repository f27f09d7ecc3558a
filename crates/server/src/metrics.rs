//! Prometheus metrics: requests by route and status, a latency histogram per route, build info.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web::Data;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
}

fn latency_histogram() -> Histogram {
    // 50 µs to ~1.6 s.
    Histogram::new(exponential_buckets(0.00005, 2.0, 16))
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("tessera");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        registry.register("http_requests", "HTTP requests by route pattern, method and status", requests.clone());
        registry.register("http_request_duration_seconds", "HTTP request latency by route pattern", latency.clone());
        let build = Info::new(vec![
            ("version".to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
            ("rustc_edition".to_owned(), "2024".to_owned()),
        ]);
        registry.register("build", "Build information", build);
        Metrics { registry, requests, latency }
    }

    pub fn record(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels { route: route.to_owned(), method: method.to_owned(), status })
            .inc();
        self.latency.get_or_create(&RouteLabels { route: route.to_owned() }).observe(seconds);
    }

    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Middleware: counts and times every request under its route *pattern* (never the raw path, so
/// client ids in URLs do not explode the label space).
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = Instant::now();
    let metrics = req.app_data::<Data<Metrics>>().cloned();
    let method = req.method().as_str().to_owned();
    let result = next.call(req).await;
    if let Some(metrics) = metrics {
        let elapsed = start.elapsed().as_secs_f64();
        match &result {
            Ok(res) => {
                let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
                metrics.record(&route, &method, res.status().as_u16(), elapsed);
            }
            Err(e) => {
                let status = e.as_response_error().status_code().as_u16();
                metrics.record("error", &method, status, elapsed);
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_build_info() {
        let m = Metrics::new();
        m.record("/jwks", "GET", 200, 0.001);
        m.record("/jwks", "GET", 200, 0.002);
        let text = m.render().unwrap();
        assert!(text.contains(r#"tessera_http_requests_total{route="/jwks",method="GET",status="200"} 2"#), "{text}");
        assert!(text.contains("tessera_http_request_duration_seconds_bucket"), "{text}");
        assert!(text.contains("tessera_build_info{"), "{text}");
    }
}
