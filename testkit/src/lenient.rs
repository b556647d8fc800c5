//! A receiving SMTP server as lenient as they come, to be the next hop in smuggling
//! tests: it drops NULs, ends a line at CRLF, a bare CR or a bare LF, does not offer
//! CHUNKING (so mxring relays with DATA and dot-stuffing), and counts every message
//! it believes it received. A count above what mxring accepted is a smuggled message.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Seen {
    pub from: String,
    /// Content lines as the lenient reader split them, unstuffed.
    pub lines: Vec<Vec<u8>>,
}

pub struct LenientSink {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Connections accepted and not yet closed.
    pub open: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl LenientSink {
    pub fn start() -> LenientSink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let open = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, o2, st2) = (seen.clone(), open.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        o2.fetch_add(1, Ordering::SeqCst);
                        let (s3, o3) = (s2.clone(), o2.clone());
                        std::thread::spawn(move || {
                            let _ = serve(stream, &s3);
                            o3.fetch_sub(1, Ordering::SeqCst);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        LenientSink {
            addr,
            seen,
            open,
            stop,
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for LenientSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Splits a byte stream into lines the lenient way.
#[derive(Default)]
struct Lines {
    line: Vec<u8>,
    /// The last line ended at a CR: an LF right after it belongs to that ending.
    after_cr: bool,
}

impl Lines {
    fn push(&mut self, bytes: &[u8], out: &mut Vec<Vec<u8>>) {
        for &b in bytes {
            let after_cr = std::mem::take(&mut self.after_cr);
            match b {
                0 => {}
                b'\n' if after_cr => {}
                b'\r' | b'\n' => {
                    self.after_cr = b == b'\r';
                    out.push(std::mem::take(&mut self.line));
                }
                _ => self.line.push(b),
            }
        }
    }
}

fn serve(mut stream: TcpStream, seen: &Mutex<Vec<Seen>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.write_all(b"220 lenient.test ESMTP\r\n")?;
    let mut splitter = Lines::default();
    let mut in_data = false;
    let mut from = String::new();
    let mut content = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        let mut lines = Vec::new();
        splitter.push(&buf[..n], &mut lines);
        let mut replies = String::new();
        for line in lines {
            if in_data {
                if line == b"." {
                    in_data = false;
                    seen.lock().unwrap().push(Seen {
                        from: from.clone(),
                        lines: std::mem::take(&mut content),
                    });
                    replies.push_str("250 2.0.0 Ok: queued\r\n");
                } else {
                    let l = line.strip_prefix(b".").unwrap_or(&line).to_vec();
                    content.push(l);
                }
                continue;
            }
            let text = String::from_utf8_lossy(&line).to_ascii_uppercase();
            if text.starts_with("EHLO") {
                replies.push_str("250-lenient.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
            } else if text.starts_with("MAIL FROM:") {
                let l = String::from_utf8_lossy(&line);
                from = l
                    .split('<')
                    .nth(1)
                    .and_then(|r| r.split('>').next())
                    .unwrap_or("")
                    .to_string();
                replies.push_str("250 2.1.0 Ok\r\n");
            } else if text.starts_with("RCPT TO:") {
                replies.push_str("250 2.1.5 Ok\r\n");
            } else if text.starts_with("DATA") {
                in_data = true;
                replies.push_str("354 go ahead\r\n");
            } else if text.starts_with("QUIT") {
                replies.push_str("221 2.0.0 Bye\r\n");
                stream.write_all(replies.as_bytes())?;
                return Ok(());
            } else {
                replies.push_str("250 2.0.0 Ok\r\n");
            }
        }
        if !replies.is_empty() {
            stream.write_all(replies.as_bytes())?;
        }
    }
}
