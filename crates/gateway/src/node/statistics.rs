//! Statistics mode: report the number of connected clients to the statistics service at
//! start-up and then every interval, as the 1.0.2 gateway did (`enabled_statistics`).
//!
//! Reporting never blocks or fails the gateway: a report that cannot be delivered is a logged
//! warning, and the interval doubles (up to ten times) until the service answers again.

use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::router::Router;

/// `{"stats_data":[{"Gateway":{…}}],"interval_seconds":60,"timestamp":"…"}`
#[derive(Debug, Serialize)]
pub struct StatsMessage {
    /// One entry per statistic.
    pub stats_data: Vec<StatsData>,
    /// The reporting interval.
    pub interval_seconds: u64,
    /// RFC 3339 start of the interval.
    pub timestamp: String,
}

/// A gateway's entry.
#[derive(Debug, Serialize)]
pub enum StatsData {
    /// Gateway statistics.
    Gateway {
        /// bs58 identity key.
        gateway_id: String,
        /// Connected, authenticated clients.
        inbox_count: u64,
    },
}

/// `<url>/v1/statistic` with exactly one slash between (1.0.2 produced a double slash).
pub fn statistic_url(service: &str) -> String {
    format!("{}/v1/statistic", service.trim_end_matches('/'))
}

/// Where and how to report.
#[derive(Debug, Clone)]
pub struct ReporterConfig {
    /// Statistics service base URL.
    pub service_url: String,
    /// This gateway's identity (bs58).
    pub gateway_id: String,
    /// Report interval.
    pub interval: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// Reports until `shutdown`.
pub async fn run(config: ReporterConfig, router: Router, shutdown: CancellationToken) {
    let url = statistic_url(&config.service_url);
    info!(%url, "statistics reporting enabled");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(config.timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let mut interval_start = SystemTime::now();
    let mut delay = Duration::ZERO;
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => break,
        }
        let message = StatsMessage {
            stats_data: vec![StatsData::Gateway {
                gateway_id: config.gateway_id.clone(),
                inbox_count: router.connected_clients() as u64,
            }],
            interval_seconds: config.interval.as_secs(),
            timestamp: humantime::format_rfc3339_nanos(interval_start).to_string(),
        };
        let (agent_ref, url_ref) = (agent.clone(), url.clone());
        let sent = tokio::task::spawn_blocking(move || {
            agent_ref
                .post(&url_ref)
                .send_json(&message)
                .map_err(|e| e.to_string())
                .and_then(|r| {
                    if r.status().is_success() {
                        Ok(())
                    } else {
                        Err(format!("the service answered {}", r.status()))
                    }
                })
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        interval_start = SystemTime::now();
        match sent {
            Ok(()) => {
                if failing {
                    info!("statistics are being delivered again");
                }
                failing = false;
                delay = config.interval;
                debug!("statistics sent");
            }
            Err(e) => {
                // Back off so a dead service costs little; warn once per outage.
                delay = if failing {
                    (delay * 2).min(config.interval * 10)
                } else {
                    config.interval
                };
                if !failing {
                    warn!(
                        "Statistics not sent: {e}; retrying in {}",
                        humantime::format_duration(delay)
                    );
                }
                failing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_shape_matches_the_service() {
        let message = StatsMessage {
            stats_data: vec![StatsData::Gateway {
                gateway_id: "Fo4f".into(),
                inbox_count: 8,
            }],
            interval_seconds: 60,
            timestamp: "2022-07-26T12:46:34.148075290Z".into(),
        };
        assert_eq!(
            serde_json::to_string(&message).unwrap(),
            r#"{"stats_data":[{"Gateway":{"gateway_id":"Fo4f","inbox_count":8}}],"interval_seconds":60,"timestamp":"2022-07-26T12:46:34.148075290Z"}"#
        );
    }

    #[test]
    fn statistic_url_has_no_double_slash() {
        assert_eq!(
            statistic_url("https://mainnet-stats.nymte.ch:8090/"),
            "https://mainnet-stats.nymte.ch:8090/v1/statistic"
        );
        assert_eq!(
            statistic_url("http://127.0.0.1:8090"),
            "http://127.0.0.1:8090/v1/statistic"
        );
    }
}
