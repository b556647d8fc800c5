//! A small authoritative DNS server for tests: UDP and TCP on one loopback port,
//! answering from a fixed table with hickory-proto's wire format. Names not in the
//! table get NXDOMAIN, names in it asked for a type they lack get NOERROR with no
//! answer (NODATA); both carry an SOA in the authority section so the resolver
//! sees the negative answer it would get from a real zone. A silent server reads
//! every query and answers none (the timeout case). Dropping the handle stops
//! and joins every thread.
//!
//! For DANE tests it plays a validating resolver: a `signed()` zone sets the AD
//! bit on answers (positive and negative) when the query carries DO or AD, as
//! unbound does, except for RRsets marked `unsigned`; it serves TLSA records and
//! one level of CNAME.

use std::collections::{HashMap, HashSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::tlsa::{CertUsage, Matching, Selector};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, SOA, TLSA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// How often the server threads look at the stop flag.
const POLL: Duration = Duration::from_millis(50);
const TTL: u32 = 300;

/// What the server says to one (name, type).
#[derive(Clone, Debug)]
enum Answer {
    Records(Vec<RData>),
    /// A bare response code (SERVFAIL, REFUSED, ...) with no records.
    Code(ResponseCode),
    /// Over UDP an empty answer with TC set; over TCP the records.
    TruncatedOverUdp(Vec<RData>),
}

/// The table the server answers from. Names are compared without case and
/// without the trailing dot.
#[derive(Clone, Debug, Default)]
pub struct Zone {
    entries: HashMap<(String, RecordType), Answer>,
    /// Answers carry AD (to queries with DO or AD set).
    signed: bool,
    /// RRsets (and negative answers) that never carry AD, even in a signed zone.
    unsigned: HashSet<(String, RecordType)>,
    /// name → target: every query for name is answered with the CNAME and the
    /// target's records of the asked type.
    cnames: HashMap<String, String>,
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn fqdn(name: &str) -> Name {
    let mut n = Name::from_ascii(name).expect("valid test name");
    n.set_fqdn(true);
    n
}

impl Zone {
    pub fn new() -> Zone {
        Zone::default()
    }

    fn push(mut self, name: &str, rtype: RecordType, rdata: RData) -> Zone {
        match self
            .entries
            .entry((key(name), rtype))
            .or_insert_with(|| Answer::Records(Vec::new()))
        {
            Answer::Records(v) | Answer::TruncatedOverUdp(v) => v.push(rdata),
            Answer::Code(_) => panic!("{name} {rtype} already answers with a response code"),
        }
        self
    }

    /// `name MX preference exchange`; an exchange of "." is a null MX (RFC 7505).
    pub fn mx(self, name: &str, preference: u16, exchange: &str) -> Zone {
        let rdata = RData::MX(MX::new(preference, fqdn(exchange)));
        self.push(name, RecordType::MX, rdata)
    }

    pub fn a(self, name: &str, ip: Ipv4Addr) -> Zone {
        self.push(name, RecordType::A, RData::A(A(ip)))
    }

    pub fn aaaa(self, name: &str, ip: Ipv6Addr) -> Zone {
        self.push(name, RecordType::AAAA, RData::AAAA(AAAA(ip)))
    }

    /// `name TXT "text"` (one string per record; repeat for more records).
    pub fn txt(self, name: &str, text: &str) -> Zone {
        let rdata = RData::TXT(TXT::new(vec![text.to_string()]));
        self.push(name, RecordType::TXT, rdata)
    }

    /// `_port._tcp.host TLSA usage selector matching data`.
    pub fn tlsa(self, name: &str, usage: u8, selector: u8, matching: u8, data: Vec<u8>) -> Zone {
        let rdata = RData::TLSA(TLSA::new(
            CertUsage::from(usage),
            Selector::from(selector),
            Matching::from(matching),
            data,
        ));
        self.push(name, RecordType::TLSA, rdata)
    }

    /// `name CNAME target` (one level; the target's records come from this zone).
    pub fn cname(mut self, name: &str, target: &str) -> Zone {
        self.cnames.insert(key(name), key(target));
        self
    }

    /// Validated: answers carry the AD bit, as a validating resolver sets it.
    pub fn signed(mut self) -> Zone {
        self.signed = true;
        self
    }

    /// This RRset (or its absence) is not validated: no AD bit for it.
    pub fn unsigned(mut self, name: &str, rtype: RecordType) -> Zone {
        self.unsigned.insert((key(name), rtype));
        self
    }

    /// Answer `name rtype` with `code` and no records.
    pub fn rcode(mut self, name: &str, rtype: RecordType, code: ResponseCode) -> Zone {
        self.entries.insert((key(name), rtype), Answer::Code(code));
        self
    }

    /// Make the records of `name rtype` too big for UDP: TC over UDP, full over TCP.
    pub fn truncate_udp(mut self, name: &str, rtype: RecordType) -> Zone {
        let k = (key(name), rtype);
        let records = match self.entries.remove(&k) {
            Some(Answer::Records(v)) => v,
            other => panic!("{name} {rtype} has no records to truncate: {other:?}"),
        };
        self.entries.insert(k, Answer::TruncatedOverUdp(records));
        self
    }

    fn has_name(&self, name: &str) -> bool {
        self.entries.keys().any(|(n, _)| n == name) || self.cnames.contains_key(name)
    }

    /// The SOA of the zone a name belongs to (the last label; enough for `.test`).
    fn soa_for(name: &str) -> Record {
        let apex = name.rsplit('.').next().unwrap_or("test");
        let apex = if apex.is_empty() { "test" } else { apex };
        let soa = SOA::new(
            fqdn(&format!("ns.{apex}")),
            fqdn(&format!("hostmaster.{apex}")),
            1,
            3600,
            600,
            86400,
            60,
        );
        Record::from_rdata(fqdn(apex), 60, RData::SOA(soa))
    }

    /// The response to `request`, or None for a request we do not answer at all.
    fn respond(&self, request: &Message, over_tcp: bool) -> Option<Message> {
        if request.message_type() != MessageType::Query {
            return None;
        }
        let mut resp = Message::new();
        resp.set_id(request.id())
            .set_message_type(MessageType::Response)
            .set_op_code(request.op_code())
            .set_authoritative(true)
            .set_recursion_desired(request.recursion_desired())
            .set_recursion_available(true)
            .add_queries(request.queries().iter().cloned());
        if request.op_code() != OpCode::Query || request.queries().len() != 1 {
            resp.set_response_code(ResponseCode::NotImp);
            return Some(resp);
        }
        let q: &Query = &request.queries()[0];
        let mut name = key(&q.name().to_ascii());
        let mut owner = q.name().clone();
        let wants_ad = request.authentic_data()
            || request.extensions().as_ref().is_some_and(|e| e.dnssec_ok());
        let ad =
            self.signed && wants_ad && !self.unsigned.contains(&(name.clone(), q.query_type()));
        resp.set_authentic_data(ad);
        if let Some(target) = self
            .cnames
            .get(&name)
            .filter(|_| q.query_type() != RecordType::CNAME)
        {
            resp.add_answer(Record::from_rdata(
                owner.clone(),
                TTL,
                RData::CNAME(CNAME(fqdn(target))),
            ));
            name = target.clone();
            owner = fqdn(target);
            let ad = ad && !self.unsigned.contains(&(name.clone(), q.query_type()));
            resp.set_authentic_data(ad);
        }
        match self.entries.get(&(name.clone(), q.query_type())) {
            Some(Answer::Records(v)) => {
                for rdata in v {
                    resp.add_answer(Record::from_rdata(owner.clone(), TTL, rdata.clone()));
                }
            }
            Some(Answer::TruncatedOverUdp(v)) => {
                if over_tcp {
                    for rdata in v {
                        resp.add_answer(Record::from_rdata(q.name().clone(), TTL, rdata.clone()));
                    }
                } else {
                    resp.set_truncated(true);
                }
            }
            Some(Answer::Code(code)) => {
                resp.set_response_code(*code);
                resp.set_authentic_data(false);
            }
            None if self.has_name(&name) => {
                resp.add_name_server(Zone::soa_for(&name));
            }
            None => {
                resp.set_response_code(ResponseCode::NXDomain);
                resp.add_name_server(Zone::soa_for(&name));
            }
        }
        Some(resp)
    }
}

/// The queries the server has read, as "name TYPE transport".
#[derive(Debug, Default)]
pub struct Counters {
    log: Mutex<Vec<String>>,
}

impl Counters {
    fn record(&self, request: &Message, transport: &str) {
        for q in request.queries() {
            self.log.lock().unwrap().push(format!(
                "{} {} {transport}",
                key(&q.name().to_ascii()),
                q.query_type()
            ));
        }
    }

    /// The queries read so far, in order.
    pub fn queries(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

/// A running server; dropping it stops it.
pub struct DnsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    pub counters: Arc<Counters>,
}

impl DnsServer {
    /// Serve `zone` on 127.0.0.1, UDP and TCP on the same port.
    pub fn start(zone: Zone) -> DnsServer {
        DnsServer::spawn(Some(zone))
    }

    /// Read every query and answer none.
    pub fn silent() -> DnsServer {
        DnsServer::spawn(None)
    }

    /// "127.0.0.1:PORT", as `[dns] nameservers` takes it.
    pub fn nameserver(&self) -> String {
        self.addr.to_string()
    }

    fn spawn(zone: Option<Zone>) -> DnsServer {
        let (udp, tcp) = bind_pair();
        let addr = udp.local_addr().expect("udp address");
        udp.set_read_timeout(Some(POLL)).expect("udp timeout");
        tcp.set_nonblocking(true).expect("nonblocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let zone = Arc::new(zone);

        let udp_thread = {
            let (stop, zone, counters) = (stop.clone(), zone.clone(), counters.clone());
            std::thread::Builder::new()
                .name("test-dns-udp".into())
                .spawn(move || serve_udp(udp, &zone, &stop, &counters))
                .expect("spawn udp thread")
        };
        let tcp_thread = {
            let (stop, zone, counters) = (stop.clone(), zone.clone(), counters.clone());
            std::thread::Builder::new()
                .name("test-dns-tcp".into())
                .spawn(move || serve_tcp(tcp, zone, stop, counters))
                .expect("spawn tcp thread")
        };
        DnsServer {
            addr,
            stop,
            threads: vec![udp_thread, tcp_thread],
            counters,
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A UDP socket and a TCP listener on the same free loopback port.
fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let addr = udp.local_addr().expect("udp address");
        if let Ok(tcp) = TcpListener::bind(addr) {
            return (udp, tcp);
        }
    }
    panic!("no loopback port free for both UDP and TCP");
}

fn serve_udp(socket: UdpSocket, zone: &Option<Zone>, stop: &AtomicBool, counters: &Counters) {
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        let (n, peer) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            // The poll timeout (WouldBlock/TimedOut) or an ICMP error from a peer.
            Err(_) => continue,
        };
        let Ok(request) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        counters.record(&request, "udp");
        let Some(zone) = zone else { continue };
        if let Some(resp) = zone.respond(&request, false) {
            let bytes = resp.to_vec().expect("encode response");
            let _ = socket.send_to(&bytes, peer);
        }
    }
}

fn serve_tcp(
    listener: TcpListener,
    zone: Arc<Option<Zone>>,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
) {
    let mut conns: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let (zone, stop, counters) = (zone.clone(), stop.clone(), counters.clone());
                let t = std::thread::spawn(move || serve_tcp_conn(stream, &zone, &stop, &counters));
                conns.push(t);
            }
            // WouldBlock (nothing to accept) or a transient error: look again soon.
            Err(_) => std::thread::sleep(POLL / 5),
        }
    }
    for t in conns {
        let _ = t.join();
    }
}

/// Read exactly `buf.len()` bytes, giving up when the server stops or the peer closes.
fn read_full(stream: &mut TcpStream, buf: &mut [u8], stop: &AtomicBool) -> bool {
    let mut got = 0;
    while got < buf.len() {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        match stream.read(&mut buf[got..]) {
            Ok(0) => return false,
            Ok(n) => got += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// RFC 1035 4.2.2: each message is preceded by its length in two octets.
fn serve_tcp_conn(
    mut stream: TcpStream,
    zone: &Option<Zone>,
    stop: &AtomicBool,
    counters: &Counters,
) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(POLL));
    loop {
        let mut len = [0u8; 2];
        if !read_full(&mut stream, &mut len, stop) {
            return;
        }
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        if !read_full(&mut stream, &mut msg, stop) {
            return;
        }
        let Ok(request) = Message::from_vec(&msg) else {
            return;
        };
        counters.record(&request, "tcp");
        let Some(zone) = zone else { continue };
        if let Some(resp) = zone.respond(&request, true) {
            let bytes = resp.to_vec().expect("encode response");
            let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&bytes);
            if stream.write_all(&framed).is_err() {
                return;
            }
        }
    }
}
