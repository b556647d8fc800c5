//! A DNSSEC-aware stub for `[dns] dnssec = "trust-ad"`: each query carries the DO
//! bit (and AD, RFC 6840 5.7) so a validating resolver such as unbound reports the
//! validation status in the AD bit of its answer. hickory-resolver 0.24 neither sets
//! DO without validating itself nor exposes the AD bit, so these few queries are
//! sent with hickory-proto's wire format directly: UDP with a 1232-byte EDNS
//! buffer, TCP when the answer is truncated (a truncated answer is never used or
//! cached). Answers are cached per shard with their TTL and their AD status;
//! failures (SERVFAIL, which is also what a validator says for bogus data,
//! timeouts) are never cached.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use hickory_resolver::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Longest time an answer is kept, whatever its TTL says.
const MAX_TTL: Duration = Duration::from_secs(3600);
/// For a negative answer without an SOA to take the TTL from.
const NEGATIVE_TTL: Duration = Duration::from_secs(60);
/// Answers kept per shard.
const MAX_ENTRIES: usize = 10_000;
/// The EDNS buffer size of DNS Flag Day 2020.
const EDNS_PAYLOAD: u16 = 1232;

/// One answer as a validating resolver gave it.
#[derive(Debug)]
pub struct StubAnswer {
    /// NoError or NXDomain; other codes are errors.
    pub rcode: ResponseCode,
    /// Records of the asked type at the end of any CNAME chain.
    pub records: Vec<RData>,
    /// The name those records belong to when a CNAME chain led elsewhere.
    pub cname_target: Option<String>,
    /// The resolver set AD: every RRset in the answer validated.
    pub secure: bool,
}

/// (name, type) → the answer and when it expires.
type Cache = HashMap<(String, RecordType), (Rc<StubAnswer>, Instant)>;

pub struct Stub {
    servers: Vec<SocketAddr>,
    timeout: Duration,
    attempts: usize,
    cache: RefCell<Cache>,
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Stub {
    pub fn new(servers: Vec<SocketAddr>, timeout: Duration) -> Stub {
        Stub {
            servers,
            timeout,
            attempts: 2,
            cache: RefCell::default(),
        }
    }

    /// `name rtype`, from the cache while its TTL runs.
    pub async fn query(&self, name: &str, rtype: RecordType) -> Result<Rc<StubAnswer>, String> {
        let k = (key(name), rtype);
        if let Some((a, until)) = self.cache.borrow().get(&k) {
            if Instant::now() < *until {
                return Ok(a.clone());
            }
        }
        let (answer, ttl) = self.ask(&k.0, rtype).await?;
        let answer = Rc::new(answer);
        let mut cache = self.cache.borrow_mut();
        if cache.len() > MAX_ENTRIES {
            let now = Instant::now();
            cache.retain(|_, (_, until)| *until > now);
            if cache.len() > MAX_ENTRIES {
                // Still full of live answers: start over rather than grow without bound.
                cache.clear();
            }
        }
        cache.insert(k, (answer.clone(), Instant::now() + ttl));
        Ok(answer)
    }

    async fn ask(&self, name: &str, rtype: RecordType) -> Result<(StubAnswer, Duration), String> {
        let qname = Name::from_ascii(format!("{name}."))
            .map_err(|_| format!("`{name}` is not a valid DNS name"))?;
        let mut last = String::from("no nameserver configured");
        for _ in 0..self.attempts {
            for &server in &self.servers {
                match self.exchange(server, &qname, rtype).await {
                    Ok(resp) => match resp.response_code() {
                        ResponseCode::NoError | ResponseCode::NXDomain => {
                            return Ok(digest(&resp, &qname, rtype))
                        }
                        ResponseCode::ServFail => {
                            last = format!(
                                "the resolver {server} answered SERVFAIL (a DNSSEC validation failure or a broken zone)"
                            )
                        }
                        code => last = format!("the resolver {server} answered {code}"),
                    },
                    Err(e) => last = e,
                }
            }
        }
        Err(last)
    }

    /// One query to one server: UDP, then TCP if the answer was truncated.
    async fn exchange(
        &self,
        server: SocketAddr,
        qname: &Name,
        rtype: RecordType,
    ) -> Result<Message, String> {
        let id: u16 = rand::random();
        let mut q = Message::new();
        q.set_id(id)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(true)
            .set_authentic_data(true)
            .add_query(Query::query(qname.clone(), rtype));
        let mut edns = Edns::new();
        edns.set_dnssec_ok(true).set_max_payload(EDNS_PAYLOAD);
        q.set_edns(edns);
        let wire = q
            .to_vec()
            .map_err(|e| format!("cannot encode a query: {e}"))?;
        let resp = tokio::time::timeout(self.timeout, udp(server, &wire, id))
            .await
            .map_err(|_| {
                format!(
                    "no answer from {server} within {}s",
                    self.timeout.as_secs_f32()
                )
            })??;
        let resp = if resp.truncated() {
            tokio::time::timeout(self.timeout, tcp(server, &wire, id))
                .await
                .map_err(|_| {
                    format!(
                        "no TCP answer from {server} within {}s",
                        self.timeout.as_secs_f32()
                    )
                })??
        } else {
            resp
        };
        let same_question = resp.queries().len() == 1
            && resp.queries()[0].query_type() == rtype
            && key(&resp.queries()[0].name().to_ascii()) == key(&qname.to_ascii());
        if !same_question {
            return Err(format!("{server} answered another question"));
        }
        Ok(resp)
    }
}

async fn udp(server: SocketAddr, wire: &[u8], id: u16) -> Result<Message, String> {
    let local: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let io = |e: std::io::Error| format!("DNS over UDP to {server}: {e}");
    let sock = tokio::net::UdpSocket::bind(local).await.map_err(io)?;
    sock.connect(server).await.map_err(io)?;
    sock.send(wire).await.map_err(io)?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = sock.recv(&mut buf).await.map_err(io)?;
        // Anything else on the socket (a late or forged answer) is ignored.
        if let Ok(m) = Message::from_vec(&buf[..n]) {
            if m.id() == id && m.message_type() == MessageType::Response {
                return Ok(m);
            }
        }
    }
}

async fn tcp(server: SocketAddr, wire: &[u8], id: u16) -> Result<Message, String> {
    let io = |e: std::io::Error| format!("DNS over TCP to {server}: {e}");
    let mut s = tokio::net::TcpStream::connect(server).await.map_err(io)?;
    let mut framed = (wire.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(wire);
    s.write_all(&framed).await.map_err(io)?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await.map_err(io)?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).await.map_err(io)?;
    let m = Message::from_vec(&buf).map_err(|e| format!("bad DNS answer from {server}: {e}"))?;
    if m.id() != id {
        return Err(format!("{server} answered another query over TCP"));
    }
    Ok(m)
}

/// The records of `rtype` for `qname` (following CNAMEs in the answer), the TTL to
/// cache them for, and the AD status.
fn digest(resp: &Message, qname: &Name, rtype: RecordType) -> (StubAnswer, Duration) {
    let answers: &[Record] = resp.answers();
    let mut owner = key(&qname.to_ascii());
    let mut cname_target = None;
    // A chain longer than 8 is treated as what it is: no answer.
    for _ in 0..8 {
        let next = answers.iter().find_map(|r| match r.data() {
            Some(RData::CNAME(c))
                if rtype != RecordType::CNAME && key(&r.name().to_ascii()) == owner =>
            {
                Some(key(&c.0.to_ascii()))
            }
            _ => None,
        });
        match next {
            Some(n) => {
                owner = n.clone();
                cname_target = Some(n);
            }
            None => break,
        }
    }
    let records: Vec<RData> = answers
        .iter()
        .filter(|r| r.record_type() == rtype && key(&r.name().to_ascii()) == owner)
        .filter_map(|r| r.data().cloned())
        .collect();
    let ttl = if records.is_empty() {
        resp.name_servers()
            .iter()
            .find_map(|r| match r.data() {
                Some(RData::SOA(soa)) => {
                    Some(Duration::from_secs(r.ttl().min(soa.minimum()) as u64))
                }
                _ => None,
            })
            .unwrap_or(NEGATIVE_TTL)
    } else {
        let min = answers.iter().map(|r| r.ttl()).min().unwrap_or(0);
        Duration::from_secs(min as u64)
    };
    (
        StubAnswer {
            rcode: resp.response_code(),
            records,
            cname_target,
            secure: resp.authentic_data(),
        },
        ttl.min(MAX_TTL),
    )
}
