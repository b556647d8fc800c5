"""Send one message with Python's smtplib over STARTTLS (no certificate verification).

Usage: python3 smtplib_send.py PORT SENDER RECIPIENT
Prints one line per step; the last is "DATA-END <code> <reply>". Exits non-zero on any
SMTP error (smtplib raises).
"""
import smtplib
import ssl
import sys

port, sender, rcpt = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
msg = (
    f"From: {sender}\r\nTo: {rcpt}\r\nSubject: interop check (smtplib)\r\n"
    "\r\nHello from Python's smtplib.\r\n"
)
with smtplib.SMTP("127.0.0.1", port, local_hostname="smtplib.interop.test", timeout=20) as s:
    s.ehlo()
    if not s.has_extn("starttls"):
        sys.exit("STARTTLS not offered")
    code, resp = s.starttls(context=ctx)
    print("STARTTLS", code, resp.decode())
    print("cipher", s.sock.version(), s.sock.cipher()[0])
    s.ehlo()
    code, resp = s.mail(sender)
    print("MAIL", code, resp.decode())
    code, resp = s.rcpt(rcpt)
    print("RCPT", code, resp.decode())
    code, resp = s.data(msg)
    print("DATA-END", code, resp.decode())
