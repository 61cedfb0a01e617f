//! Small statistics helpers: latency percentiles, rates, and a ratio against a target.

use std::time::Duration;

/// Latency percentiles in milliseconds, from samples in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Latency {
    /// Number of samples.
    pub samples: usize,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
}

impl Latency {
    /// Summarises `samples_us` (sorted in place). Empty input gives zeros.
    pub fn from_micros(samples_us: &mut [u64]) -> Self {
        samples_us.sort_unstable();
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            samples: samples_us.len(),
            p50_ms: ms(percentile(samples_us, 50.0)),
            p99_ms: ms(percentile(samples_us, 99.0)),
            max_ms: ms(samples_us.last().copied().unwrap_or(0)),
        }
    }
}

/// The `p`-th percentile (0–100) of sorted `samples` by the nearest-rank method: the smallest
/// sample with at least `p` % of the samples at or below it. 0 for no samples.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Events per second; 0 when no time passed.
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

/// `measured / target`, or 0 when the target is 0.
pub fn ratio(measured: f64, target: f64) -> f64 {
    if target > 0.0 {
        measured / target
    } else {
        0.0
    }
}

/// Parses a comma-separated list of client counts such as `1000,10k,20000`, ascending and
/// without duplicates (`k` multiplies by 1000).
pub fn parse_counts(text: &str) -> Result<Vec<usize>, String> {
    let mut counts = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (digits, factor) = match item.strip_suffix(['k', 'K']) {
            Some(digits) => (digits, 1000),
            None => (item, 1),
        };
        let value: usize = digits
            .parse()
            .map_err(|_| format!("{item:?} is not a number of clients"))?;
        let value = value * factor;
        if value == 0 {
            return Err("a client count must be greater than 0".into());
        }
        if counts.last().is_some_and(|&last| last >= value) {
            return Err(format!("client counts must ascend: {text:?}"));
        }
        counts.push(value);
    }
    if counts.is_empty() {
        return Err("at least one client count is needed".into());
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&samples, 50.0), 50);
        assert_eq!(percentile(&samples, 99.0), 99);
        assert_eq!(percentile(&samples, 100.0), 100);
        assert_eq!(percentile(&samples, 0.0), 1);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
        // 99th of 10 samples is the largest: 9.9 rounds up to rank 10.
        let ten: Vec<u64> = (1..=10).collect();
        assert_eq!(percentile(&ten, 99.0), 10);
    }

    #[test]
    fn latency_summary_sorts_and_converts() {
        let mut samples = vec![3000, 1000, 2000, 500];
        let latency = Latency::from_micros(&mut samples);
        assert_eq!(latency.samples, 4);
        assert_eq!(latency.p50_ms, 1.0);
        assert_eq!(latency.p99_ms, 3.0);
        assert_eq!(latency.max_ms, 3.0);
        assert_eq!(Latency::from_micros(&mut []).p99_ms, 0.0);
    }

    #[test]
    fn rates_and_ratios() {
        assert_eq!(per_second(500, Duration::from_millis(250)), 2000.0);
        assert_eq!(per_second(5, Duration::ZERO), 0.0);
        assert_eq!(ratio(3.0, 2.0), 1.5);
        assert_eq!(ratio(3.0, 0.0), 0.0);
    }

    #[test]
    fn client_counts() {
        assert_eq!(
            parse_counts("1000,10k, 20000").unwrap(),
            vec![1000, 10_000, 20_000]
        );
        assert_eq!(parse_counts("5").unwrap(), vec![5]);
        assert!(parse_counts("10,5").is_err());
        assert!(parse_counts("10,10").is_err());
        assert!(parse_counts("0").is_err());
        assert!(parse_counts("ten").is_err());
        assert!(parse_counts("").is_err());
    }
}
