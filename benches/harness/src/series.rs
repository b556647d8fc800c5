//! The per-second time series of a load run, the SLO crossing found in it, and its
//! CSV form.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::schedule::Offered;
use crate::stats::Second;

/// One second of the run, by the time messages completed.
#[derive(Serialize, Debug, Clone)]
pub struct Point {
    /// Start of the second, in seconds since the start of the run.
    pub t: u64,
    /// How much of this second the run covered (below 1 only for the last one).
    pub span: f64,
    /// Rate offered at the middle of the second (open loop), else null.
    pub offered_rate: Option<f64>,
    pub messages_ok: u64,
    pub messages_failed: u64,
    pub messages_per_s: f64,
    pub connections_opened: u64,
    /// Sessions open at the end of the second.
    pub open_sessions: Option<u64>,
    /// Message latency of this second's accepted messages (null when none).
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub data_end_p99_ms: Option<f64>,
}

fn ms(h: &Histogram<u64>, q: f64) -> Option<f64> {
    (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0)
}

pub fn build(
    seconds: &[Second],
    elapsed: Duration,
    open: &[u64],
    offered: Option<Offered>,
) -> Vec<Point> {
    let run = elapsed.as_secs_f64();
    seconds
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let t = i as u64;
            let span = (run - t as f64).clamp(0.0, 1.0).max(1e-3);
            Point {
                t,
                span,
                offered_rate: offered
                    .map(|o| o.rate_at(Duration::from_secs_f64(t as f64 + span / 2.0))),
                messages_ok: s.ok,
                messages_failed: s.failed,
                messages_per_s: s.ok as f64 / span,
                connections_opened: s.connections,
                open_sessions: open.get(i).copied(),
                p50_ms: ms(&s.latency, 0.50),
                p99_ms: ms(&s.latency, 0.99),
                max_ms: (!s.latency.is_empty()).then(|| s.latency.max() as f64 / 1000.0),
                data_end_p99_ms: ms(&s.data_end, 0.99),
            }
        })
        .collect()
}

/// Where the per-second p99 first went above the SLO.
#[derive(Serialize, Debug)]
pub struct SloReport {
    pub p99_ms: f64,
    pub crossed: bool,
    pub crossed_at_s: Option<u64>,
    pub offered_rate_at_crossing: Option<f64>,
    pub achieved_rate_at_crossing: Option<f64>,
    /// The highest per-second rate reached before the crossing with p99 within the SLO.
    pub best_rate_within_slo: Option<f64>,
}

pub fn slo(points: &[Point], limit: Duration) -> SloReport {
    let limit_ms = limit.as_secs_f64() * 1000.0;
    // Seconds the run barely covered say little; seconds with no accepted message say
    // nothing about latency.
    let judged = points
        .iter()
        .filter(|p| p.span >= 0.5)
        .filter_map(|p| p.p99_ms.map(|q| (p, q)));
    let mut best: Option<f64> = None;
    for (p, p99) in judged {
        if p99 > limit_ms {
            return SloReport {
                p99_ms: limit_ms,
                crossed: true,
                crossed_at_s: Some(p.t),
                offered_rate_at_crossing: p.offered_rate,
                achieved_rate_at_crossing: Some(p.messages_per_s),
                best_rate_within_slo: best,
            };
        }
        best = Some(best.map_or(p.messages_per_s, |b| b.max(p.messages_per_s)));
    }
    SloReport {
        p99_ms: limit_ms,
        crossed: false,
        crossed_at_s: None,
        offered_rate_at_crossing: None,
        achieved_rate_at_crossing: None,
        best_rate_within_slo: best,
    }
}

pub fn write_csv(path: &Path, points: &[Point]) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(
        f,
        "t,span,offered_rate,messages_ok,messages_failed,messages_per_s,connections_opened,\
         open_sessions,p50_ms,p99_ms,max_ms,data_end_p99_ms"
    )?;
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_default();
    for p in points {
        writeln!(
            f,
            "{},{:.3},{},{},{},{:.1},{},{},{},{},{},{}",
            p.t,
            p.span,
            opt(p.offered_rate),
            p.messages_ok,
            p.messages_failed,
            p.messages_per_s,
            p.connections_opened,
            p.open_sessions.map(|n| n.to_string()).unwrap_or_default(),
            opt(p.p50_ms),
            opt(p.p99_ms),
            opt(p.max_ms),
            opt(p.data_end_p99_ms),
        )?;
    }
    f.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(t: u64, rate: f64, p99: Option<f64>) -> Point {
        Point {
            t,
            span: 1.0,
            offered_rate: Some(rate),
            messages_ok: rate as u64,
            messages_failed: 0,
            messages_per_s: rate,
            connections_opened: 0,
            open_sessions: None,
            p50_ms: p99,
            p99_ms: p99,
            max_ms: p99,
            data_end_p99_ms: p99,
        }
    }

    #[test]
    fn slo_crossing_is_the_first_second_above() {
        let pts = [
            point(0, 100.0, Some(5.0)),
            point(1, 200.0, Some(9.0)),
            point(2, 300.0, None),
            point(3, 400.0, Some(60.0)),
            point(4, 500.0, Some(80.0)),
        ];
        let r = slo(&pts, Duration::from_millis(50));
        assert!(r.crossed);
        assert_eq!(r.crossed_at_s, Some(3));
        assert_eq!(r.offered_rate_at_crossing, Some(400.0));
        assert_eq!(r.best_rate_within_slo, Some(200.0));
        let r = slo(&pts[..2], Duration::from_millis(50));
        assert!(!r.crossed);
        assert_eq!(r.best_rate_within_slo, Some(200.0));
    }
}
