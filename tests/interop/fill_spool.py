"""Send large messages over plain SMTP with Python's smtplib, one connection each.

Usage:
  python3 fill_spool.py fill PORT MAX SIZE
      Sends up to MAX messages of about SIZE bytes, one after the other, and stops at the
      first one that is not accepted.
  python3 fill_spool.py retry PORT SECONDS SIZE
      Sends one message of about SIZE bytes, again every second, until one is accepted
      or SECONDS have passed.

Prints one line per message:
  MSG N 250 <reply text>                      accepted ("... queued as ID")
  MSG N REFUSED <stage> <code> <reply text>   stage: MAIL, RCPT, DATA or DATA-END
  MSG N ERROR <exception>                     no SMTP reply (connection lost, timeout)
Exits 0 when the last message sent was accepted, 1 otherwise.
"""
import base64
import os
import smtplib
import sys
import time

SENDER = "filler@interop.test"
RCPT = "full@interop.test"


def body(size, n):
    # Random (incompressible) base64 in 76-character lines, like an attachment.
    raw = base64.b64encode(os.urandom(size * 3 // 4)).decode()
    lines = [raw[i : i + 76] for i in range(0, len(raw), 76)]
    head = (
        f"From: {SENDER}\r\nTo: {RCPT}\r\nSubject: interop disk-full filler {n}\r\n"
        "MIME-Version: 1.0\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    )
    return head + "\r\n".join(lines) + "\r\n"


def send(port, size, n):
    """One message on a new connection; returns (accepted, line)."""
    try:
        with smtplib.SMTP("127.0.0.1", port, local_hostname="filler.interop.test", timeout=30) as s:
            s.ehlo()
            code, resp = s.mail(SENDER)
            if code != 250:
                return False, f"MSG {n} REFUSED MAIL {code} {resp.decode()}"
            code, resp = s.rcpt(RCPT)
            if code not in (250, 251):
                return False, f"MSG {n} REFUSED RCPT {code} {resp.decode()}"
            try:
                code, resp = s.data(body(size, n))
            except smtplib.SMTPDataError as e:  # DATA itself refused (not 354)
                return False, f"MSG {n} REFUSED DATA {e.smtp_code} {e.smtp_error.decode()}"
            if code != 250:
                return False, f"MSG {n} REFUSED DATA-END {code} {resp.decode()}"
            return True, f"MSG {n} 250 {resp.decode()}"
    except (OSError, smtplib.SMTPException) as e:
        return False, f"MSG {n} ERROR {type(e).__name__}: {e}"


def main():
    mode, port, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    ok = False
    if mode == "fill":
        for n in range(1, count + 1):
            ok, line = send(port, size, n)
            print(line, flush=True)
            if not ok:
                break
    elif mode == "retry":
        deadline = time.monotonic() + count
        n = 0
        while True:
            n += 1
            ok, line = send(port, size, n)
            print(line, flush=True)
            if ok or time.monotonic() >= deadline:
                break
            time.sleep(1)
    else:
        sys.exit(f"unknown mode {mode}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
