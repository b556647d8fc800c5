//! Test messages: pre-generated bodies plus cheap per-message headers.
//!
//! Bodies are generated once per distinct size and shared, so the load loop spends its time
//! on the wire rather than on filling buffers. No body line starts with '.', so the DATA
//! stream needs no dot-stuffing and a body can be copied as-is.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::distributions::WeightedIndex;
use rand::prelude::*;

/// Body text lines are kept at 76 characters + CRLF, within RFC 5322's 78-character advice.
const LINE: usize = 78;

/// Printable ASCII without '.', so no line can need dot-stuffing.
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ,;-_+=()";

/// Builds a body of exactly `size` bytes (at least 2): CRLF-terminated printable lines.
pub fn make_body(size: usize, rng: &mut impl Rng) -> Vec<u8> {
    let size = size.max(2);
    let mut out = Vec::with_capacity(size);
    let mut remaining = size;
    while remaining > 0 {
        let mut take = remaining.min(LINE);
        // A 1-byte tail cannot hold a CRLF; shorten this line so the last one can.
        if remaining - take == 1 {
            take -= 1;
        }
        for i in 0..take - 2 {
            let mut c = ALPHABET[rng.gen_range(0..ALPHABET.len())];
            // Trailing spaces can be stripped by relays; keep line ends visible.
            if c == b' ' && (i == 0 || i == take - 3) {
                c = b'x';
            }
            out.push(c);
        }
        out.extend_from_slice(b"\r\n");
        remaining -= take;
    }
    debug_assert_eq!(out.len(), size);
    out
}

/// The set of bodies a run draws from, with their weights.
pub struct BodyPool {
    bodies: Vec<Arc<Vec<u8>>>,
    index: WeightedIndex<u32>,
}

impl BodyPool {
    pub fn new(sizes: &[(usize, u32)]) -> BodyPool {
        let mut rng = StdRng::seed_from_u64(0x6d78_7269_6e67);
        let bodies = sizes
            .iter()
            .map(|&(s, _)| Arc::new(make_body(s, &mut rng)))
            .collect();
        let index = WeightedIndex::new(sizes.iter().map(|&(_, w)| w))
            .expect("weights validated by the CLI parser");
        BodyPool { bodies, index }
    }

    pub fn pick(&self, rng: &mut impl Rng) -> &Arc<Vec<u8>> {
        &self.bodies[self.index.sample(rng)]
    }
}

/// The body sizes used when neither --size nor --size-dist is given: mostly short
/// text, a long tail of messages with attachments (mean about 90 KiB). README shows it.
pub const DEFAULT_MIX: &[(usize, u32)] = &[
    (2 * 1024, 25),
    (8 * 1024, 35),
    (32 * 1024, 20),
    (128 * 1024, 13),
    (512 * 1024, 5),
    (2 * 1024 * 1024, 2),
];

/// Everything a header block needs that varies per run.
pub struct Envelope {
    pub from: String,
    pub recipients: Vec<String>,
}

impl Envelope {
    /// `count` recipients userN, at `to_domain` itself when `domains` is 1, else spread
    /// round-robin over d1.`to_domain` .. dD.`to_domain`.
    pub fn new(from: &str, to_domain: &str, count: u32, domains: u32) -> Envelope {
        let domain = |i: u32| {
            if domains <= 1 {
                to_domain.to_string()
            } else {
                format!("d{}.{to_domain}", (i - 1) % domains + 1)
            }
        };
        Envelope {
            from: from.to_string(),
            recipients: (1..=count)
                .map(|i| format!("user{i}@{}", domain(i)))
                .collect(),
        }
    }
}

/// Appends the RFC 5322 header block (ending with the empty line) to `out`.
pub fn write_headers(out: &mut Vec<u8>, env: &Envelope, id: &str, now: SystemTime) {
    use std::io::Write;
    let _ = write!(out, "From: <{}>\r\nTo: ", env.from);
    for (i, r) in env.recipients.iter().enumerate() {
        if i > 0 {
            // One recipient per folded line keeps every header line short.
            out.extend_from_slice(b",\r\n ");
        }
        let _ = write!(out, "<{r}>");
    }
    let _ = write!(
        out,
        "\r\nSubject: mxring-bench {id}\r\nDate: {}\r\nMessage-ID: <{id}@load.test>\r\nMIME-Version: 1.0\r\n\r\n",
        rfc5322_date(now)
    );
}

/// Formats a time as an RFC 5322 date in UTC, e.g. "Tue, 15 Nov 1994 08:12:31 +0000".
pub fn rfc5322_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's civil calendar algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn body_exact_size_and_shape() {
        let mut rng = StdRng::seed_from_u64(1);
        for size in [0, 1, 2, 3, 77, 78, 79, 80, 156, 157, 1024, 10_000] {
            let b = make_body(size, &mut rng);
            assert_eq!(b.len(), size.max(2), "size {size}");
            assert!(b.ends_with(b"\r\n"));
            for line in b.split(|&c| c == b'\n') {
                // Split on LF, so each line still holds its CR.
                assert!(line.len() < LINE);
                assert!(!line.starts_with(b"."));
                assert!(line.is_empty() || line.ends_with(b"\r"));
            }
        }
    }

    #[test]
    fn date_format() {
        let t = UNIX_EPOCH + Duration::from_secs(784_887_151);
        assert_eq!(rfc5322_date(t), "Tue, 15 Nov 1994 08:12:31 +0000");
        assert_eq!(rfc5322_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 +0000");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc5322_date(leap), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn recipients_spread_over_domains() {
        let env = Envelope::new("a@b.test", "example.com", 5, 2);
        assert_eq!(
            env.recipients,
            [
                "user1@d1.example.com",
                "user2@d2.example.com",
                "user3@d1.example.com",
                "user4@d2.example.com",
                "user5@d1.example.com"
            ]
        );
    }

    #[test]
    fn default_mix_mean_is_as_documented() {
        let total: u32 = DEFAULT_MIX.iter().map(|&(_, w)| w).sum();
        let mean: usize = DEFAULT_MIX
            .iter()
            .map(|&(s, w)| s * w as usize)
            .sum::<usize>()
            / total as usize;
        assert!((85 * 1024..95 * 1024).contains(&mean), "{mean}");
    }

    #[test]
    fn headers_fold_recipients() {
        let env = Envelope::new("a@b.test", "example.com", 2, 1);
        let mut out = Vec::new();
        write_headers(&mut out, &env, "1.2", UNIX_EPOCH);
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with(
            "From: <a@b.test>\r\nTo: <user1@example.com>,\r\n <user2@example.com>\r\n"
        ));
        assert!(s.ends_with("\r\n\r\n"));
        assert!(s.contains("Message-ID: <1.2@load.test>\r\n"));
    }
}
