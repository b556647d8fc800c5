//! MAIL and RCPT parameters (RFC 1870 SIZE, 6152 BODY, 6531 SMTPUTF8, 3461 DSN).

use super::envelope::{xtext_decode, BodyType, Ret};
use super::notify::NotifyFlags;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailParams {
    pub size: Option<u64>,
    pub body: BodyType,
    pub smtputf8: bool,
    pub ret: Option<Ret>,
    pub envid: Option<String>,
    /// RFC 8689 REQUIRETLS: relay only over authenticated TLS.
    pub requiretls: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RcptParams {
    pub notify: Option<NotifyFlags>,
    pub orcpt: Option<String>,
}

/// A refused parameter; the text goes into a `555 5.5.4` or `501 5.5.4` reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamError(pub String);

fn split(p: &str) -> (&str, Option<&str>) {
    match p.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (p, None),
    }
}

pub fn parse_mail_params(text: &str) -> Result<MailParams, ParamError> {
    let mut out = MailParams::default();
    for p in text.split(' ').filter(|p| !p.is_empty()) {
        let (key, value) = split(p);
        let bad = || ParamError(format!("Bad {} parameter", key.to_ascii_uppercase()));
        if key.eq_ignore_ascii_case("SIZE") {
            let v = value.filter(|v| {
                !v.is_empty() && v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit())
            });
            out.size = Some(v.and_then(|v| v.parse().ok()).ok_or_else(bad)?);
        } else if key.eq_ignore_ascii_case("BODY") {
            out.body = match value {
                Some(v) if v.eq_ignore_ascii_case("7BIT") => BodyType::SevenBit,
                Some(v) if v.eq_ignore_ascii_case("8BITMIME") => BodyType::EightBitMime,
                _ => return Err(bad()),
            };
        } else if key.eq_ignore_ascii_case("SMTPUTF8") {
            if value.is_some() {
                return Err(bad());
            }
            out.smtputf8 = true;
        } else if key.eq_ignore_ascii_case("RET") {
            out.ret = Some(match value {
                Some(v) if v.eq_ignore_ascii_case("FULL") => Ret::Full,
                Some(v) if v.eq_ignore_ascii_case("HDRS") => Ret::Hdrs,
                _ => return Err(bad()),
            });
        } else if key.eq_ignore_ascii_case("ENVID") {
            let v = value
                .filter(|v| v.len() <= 100)
                .and_then(xtext_decode)
                .ok_or_else(bad)?;
            out.envid = Some(v);
        } else if key.eq_ignore_ascii_case("REQUIRETLS") {
            if value.is_some() {
                return Err(bad());
            }
            out.requiretls = true;
        } else if key.eq_ignore_ascii_case("AUTH") {
            // RFC 4954 5: the submitter another server vouches for. Checked for form
            // and then ignored: only our own AUTH decides who a client is.
            value
                .filter(|v| *v == "<>" || (v.len() <= 500 && xtext_decode(v).is_some()))
                .ok_or_else(bad)?;
        } else {
            return Err(ParamError(format!("Unsupported option: {key}")));
        }
    }
    Ok(out)
}

pub fn parse_rcpt_params(text: &str) -> Result<RcptParams, ParamError> {
    let mut out = RcptParams::default();
    for p in text.split(' ').filter(|p| !p.is_empty()) {
        let (key, value) = split(p);
        let bad = || ParamError(format!("Bad {} parameter", key.to_ascii_uppercase()));
        if key.eq_ignore_ascii_case("NOTIFY") {
            let v = value.ok_or_else(bad)?;
            out.notify = Some(NotifyFlags::parse(v).map_err(|_| bad())?);
        } else if key.eq_ignore_ascii_case("ORCPT") {
            let v = value
                .filter(|v| v.len() <= 500)
                .and_then(xtext_decode)
                .ok_or_else(bad)?;
            if !v.contains(';') {
                return Err(bad());
            }
            out.orcpt = Some(v);
        } else {
            return Err(ParamError(format!("Unsupported option: {key}")));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_params() {
        let p =
            parse_mail_params("SIZE=1000 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=abc+2B1").unwrap();
        assert_eq!(p.size, Some(1000));
        assert_eq!(p.body, BodyType::EightBitMime);
        assert!(p.smtputf8);
        assert_eq!(p.ret, Some(Ret::Hdrs));
        assert_eq!(p.envid.as_deref(), Some("abc+1"));
        assert!(parse_mail_params("SIZE=abc").is_err());
        assert!(parse_mail_params("BODY=BINARYMIME").is_err());
        // RFC 4954 AUTH= is taken (and ignored) when well-formed.
        assert!(parse_mail_params("AUTH=<>").is_ok());
        assert!(parse_mail_params("AUTH=alice+40a.test").is_ok());
        assert!(parse_mail_params("AUTH=a+ZZ").is_err());
        assert!(parse_mail_params("AUTH").is_err());
        assert!(parse_mail_params("REQUIRETLS").unwrap().requiretls);
        assert!(parse_mail_params("requiretls SIZE=5").unwrap().requiretls);
        assert!(!parse_mail_params("SIZE=5").unwrap().requiretls);
        assert!(
            parse_mail_params("REQUIRETLS=YES").is_err(),
            "no value allowed"
        );
    }

    #[test]
    fn rcpt_params() {
        let p = parse_rcpt_params("NOTIFY=success,delay ORCPT=rfc822;a+2Bb@c.example").unwrap();
        assert_eq!(
            p.notify.map(|n| n.to_string()).as_deref(),
            Some("SUCCESS,DELAY")
        );
        assert_eq!(p.orcpt.as_deref(), Some("rfc822;a+b@c.example"));
        assert!(parse_rcpt_params("NOTIFY=NEVER,DELAY").is_err());
        assert!(parse_rcpt_params("NOTIFY=SOMETIMES").is_err());
        assert!(parse_rcpt_params("ORCPT=nosemicolon").is_err());
    }
}
