#!/usr/bin/env python3
"""Write the seed corpus of every fuzz target into fuzz/corpus/<target>/.

Seeds are named seed-<n>; files libFuzzer adds later are named by their SHA-1, so
re-running this script only rewrites the seeds. Run from anywhere.
"""
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(target, seeds):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    for i, s in enumerate(seeds):
        with open(os.path.join(d, f"seed-{i:02d}"), "wb") as f:
            f.write(s)


def chunked(flags, data, lens=()):
    """The session/decoder input layout: flags, n, chunk lengths, bytes."""
    return bytes([flags, len(lens)]) + bytes(lens) + data


commands = [
    b"EHLO client.example",
    b"HELO client.example",
    b"ehlo [192.0.2.1]",
    b"MAIL FROM:<a@b.example>",
    b"MAIL FROM:<>",
    b"mail from: <a@b.example> SIZE=1000 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=abc+2B1",
    b"MAIL FROM:<@r1.example,@r2.example:u@final.example>",
    b"MAIL FROM:<\"quoted >@ local\"@b.example> BODY=7BIT",
    b"MAIL FROM:<j\xc3\xb6s\xc3\xa9@b\xc3\xbccher.example> SMTPUTF8",
    b"RCPT TO:<bob@local.example>",
    b"RCPT TO:<bob@local.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob+2B1@local.example",
    b"RCPT TO:<x@[IPv6:2001:db8::1]> NOTIFY=NEVER",
    b"RCPT TO:<x@[192.0.2.1]>",
    b"DATA",
    b"BDAT 100 LAST",
    b"BDAT 0",
    b"RSET",
    b"NOOP hello",
    b"QUIT",
    b"VRFY postmaster",
    b"HELP",
    b"STARTTLS",
    b"starttls",
    b"AUTH PLAIN",
]
write("command_parser", commands)

s = [
    b"EHLO client.example\r\nMAIL FROM:<a@sender.example> SIZE=100 RET=HDRS ENVID=e1\r\n"
    b"RCPT TO:<bob@local.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@local.example\r\n"
    b"DATA\r\nSubject: hi\r\n\r\n..dot\r\n.\r\nQUIT\r\n",
    b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<a@local.example>\r\nRCPT TO:<b@elsewhere.example>\r\n"
    b"RCPT TO:<c@local.example>\r\nDATA\r\nx\r\n.\r\nMAIL FROM:<a@b.example>\r\nRSET\r\nNOOP\r\n"
    b"VRFY x\r\nHELP\r\nQUIT\r\n",
    b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@local.example>\r\nBDAT 5\r\nhelloBDAT 7 LAST\r\n"
    b" world\n\r\nQUIT\r\n",
    b"EHLO c\r\nSTARTTLS\r\nEHLO c\r\nMAIL FROM:<a@bank.example>\r\nRCPT TO:<secret@local.example>\r\n"
    b"DATA\r\nhi\r\n.\r\nQUIT\r\n",
    b"HELO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<secret@local.example>\r\nRCPT TO:<y@x.tls12.local.example>\r\n"
    b"RCPT TO:<plain@local.example>\r\nDATA\r\na\n.\nb\r\n.\r\nQUIT\r\n",
    b"EHLO c\r\nMAIL FROM:<a@b.example> SIZE=999999\r\nMAIL FROM:<j\xc3\xb6@b.example>\r\n"
    b"MAIL FROM:<a@b.example> SMTPUTF8\r\nRCPT TO:<b@local.example>\r\nDATA\r\n" + b"y" * 1200 + b"\r\n.\r\nQUIT\r\n",
    b"EHLO c\r\nBDAT 3\r\nabcMAIL FROM:<a@b.example>\r\nBDAT 2 LAST\r\nxyDATA now\r\nfoo\r\nbar\rbaz\r\n" + b"Z" * 600 + b"\r\nQUIT\r\n",
    b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@sub.local.example>\r\nBDAT 0 LAST\r\nQUIT\r\n",
]
write(
    "server_session",
    [chunked(0x05, s[0], (7, 40)), chunked(0x00, s[1]), chunked(0x14, s[2], (30, 1, 1)),
     chunked(0x01, s[3], (9, 5)), chunked(0x02, s[3]), chunked(0x08 | 0x01, s[3]),
     chunked(0x00, s[4]), chunked(0x04, s[5], (100, 200, 250)), chunked(0x30, s[6], (3,)),
     chunked(0xf4, s[7])],
)

ehlo = (b"220 mx ESMTP\r\n250-mx\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n"
        b"250-DSN\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250-STARTTLS\r\n250 ENHANCEDSTATUSCODES\r\n")
c = [
    (0x40, ehlo.replace(b"250-CHUNKING\r\n", b"").replace(b"250-STARTTLS\r\n", b"")
     + b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n250 2.0.0 queued\r\n221 bye\r\n"),
    (0x05, b"220 mx\r\n250-mx\r\n250 SIZE 10\r\n250 ok\r\n250 ok\r\n550 5.1.1 no\r\n250 reset\r\n221 bye\r\n"),
    (0x01, ehlo + b"220 2.0.0 go ahead\r\n" + ehlo[14:]),
    (0x02, b"220 mx\r\n250 mx\r\n"),
    (0x00, b"220 mx\r\n502 no ehlo\r\n250 helo ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n221 bye\r\n"),
    (0x84, ehlo.replace(b"250-STARTTLS\r\n", b"") + b"250 ok\r\n250 ok\r\n250 ok\r\n250 2.0.0 chunk ok\r\n221 bye\r\n"),
    (0x00, b"554 go away\r\n"),
    (0x01, b"220 mx\r\n250-mx\r\n250 STARTTLS\r\n454 4.7.0 TLS not available\r\n250 ok\r\n"),
    (0x00, b"220-mx\r\n221 mixed\r\n"),
    (0x00, b"220 mx\r\n250-mx\r\n250 PIPELINING\r\n550 no sender\r\n550 no rcpt\r\n354 go anyway\r\n250 fine\r\n"),
]
write("client_session", [chunked(f, d, (5, 13)) if i % 2 else chunked(f, d) for i, (f, d) in enumerate(c)])

d = [
    b"Subject: x\r\n\r\n..leading dot\r\nbody\r\n.\r\nQUIT\r\n",
    b".\r\n",
    b"a\r\n\n.\r\nMAIL FROM:<x@y>\r\n",
    b"a\r\n\r.\r\nX\r\n",
    b"a\n.\nX\r\n",
    b"a\r\n.\nX",
    b"x" * 998 + b"\r\n.\r\n",
    b"x" * 999 + b"\r\n.\r\n",
    b".x" * 400 + b"\r\n" + b"." * 997 + b"\r\n",
    b"line\r\n.\r\nafter\r\n",
    b"..x\r\n.y\r\nz",
    b"0123456789abc\r\n.\r\n",
]
write("data_decoder", [chunked(0xff if i % 3 else 1 + i, x, (2, 3) if i % 2 else ()) for i, x in enumerate(d)])

sig = b"\r\n\r\n\x00\r\nQUIT\n"
v2_4 = sig + bytes([0x21, 0x11]) + struct.pack(">H", 12) + bytes([192, 0, 2, 1, 198, 51, 100, 7]) + struct.pack(">HH", 51234, 25)
v2_6 = sig + bytes([0x21, 0x21]) + struct.pack(">H", 36 + 7) + bytes(range(16)) + bytes(range(16, 32)) + struct.pack(">HH", 1, 2) + b"\x03\x00\x04abcd"
p = [
    b"PROXY TCP4 192.0.2.1 198.51.100.7 51234 25\r\nEHLO x\r\n",
    b"PROXY TCP6 2001:db8::1 2001:db8::2 51234 25\r\n",
    b"PROXY UNKNOWN\r\n",
    b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
    b"PROXY TCP4 192.0.2.1 198.51.100.7 51234 025\r\n",
    b"PROXY TCP4 ::1 ::2 1 2\r\n",
    b"PROXY TCP4 192.0.2.1 198.51.100.7 1 2\n",
    b"PROXY TCP6 ::ffff:192.0.2.1 ::1 65535 0 extra\r\n",
    v2_4 + b"EHLO x\r\n",
    v2_6,
    sig + bytes([0x20, 0x00, 0x00, 0x00]),
    sig + bytes([0x21, 0x00, 0x00, 0x03]) + b"abc",
    sig + bytes([0x21, 0x12, 0x00, 0x0c]) + bytes(12),
    sig + bytes([0x31, 0x11]),
    sig + bytes([0x21, 0x11, 0x00, 0x04]) + bytes(4),
    b"EHLO not proxied\r\n",
]
write("proxy_header", p)

r = [
    b"220 mx.example ESMTP\r\n",
    b"250-mx.example\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 STARTTLS\r\n",
    b"550 5.1.1 no such user\r\n",
    b"421-4.7.0 closing\r\n421 4.7.0 bye\r\nextra",
    b"250\r\n",
    b"250 ok\n",
    b"250-a\r\n251 b\r\n",
    b"099 x\r\n",
    b"354 go ahead\r\n",
    b"452 4.5.3 too many \xff\xfe recipients\r\n",
    b"250-" + b"x" * 100 + b"\r\n250 y\r\n",
]
write("reply_parser", r)
