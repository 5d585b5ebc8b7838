//! Personal data inside free text (notes, comments, messages).
//!
//! A column of free text has no PII type of its own, yet its cells may hold
//! an e-mail address, a phone number or a card number in a sentence. The
//! self-evident types are found here as spans: a pattern proposes a
//! candidate and the type's own validator ([`crate::recognize`]: checksums,
//! issuer prefixes, numbering plans) keeps it or not, so an order number is
//! not a card and a date is not a phone. Names and street addresses are not
//! looked for in free text: without a language model they cannot be told
//! from ordinary words there.

use std::sync::LazyLock;

use regex::Regex;

use crate::recognize::{self, PiiType};

/// One entity found in a text: bytes `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// What it is.
    pub ty: PiiType,
}

/// A type's candidate pattern and its validator.
struct Finder {
    ty: PiiType,
    re: Regex,
    valid: fn(&str) -> bool,
    /// Whether a candidate that fails may lose trailing space-separated
    /// groups until it passes (an IBAN followed by a code in capitals, a
    /// phone number followed by another number).
    shrink: bool,
}

fn phone_in_text(v: &str) -> bool {
    recognize::phone(v, true) && recognize::phone_valid(v, phonenumber::country::Id::US)
}

/// Finders in order of precedence: where two candidates overlap, the
/// earlier finder's wins (an e-mail's digits are not a phone).
static FINDERS: LazyLock<Vec<Finder>> = LazyLock::new(|| {
    let f = |ty, re: &str, valid, shrink| Finder {
        ty,
        // The patterns are literals of this file, tested below.
        re: Regex::new(re).unwrap_or_else(|e| unreachable!("pattern {re}: {e}")),
        valid,
        shrink,
    };
    vec![
        f(
            PiiType::EmailAddress,
            r"[\p{L}\p{N}][\p{L}\p{N}._%+-]*@[\p{L}\p{N}-]+(?:\.[\p{L}\p{N}-]+)*\.\p{L}{2,}",
            recognize::email,
            false,
        ),
        f(
            PiiType::Url,
            r#"(?i)(?:https?://|ftp://|www\.)[^\s<>"'()\[\]{}]+"#,
            recognize::url,
            false,
        ),
        f(
            PiiType::IbanCode,
            r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}",
            recognize::iban,
            true,
        ),
        f(
            PiiType::CreditCard,
            r"[0-9](?:[ -]?[0-9]){11,18}",
            recognize::card,
            false,
        ),
        f(
            PiiType::UsSsn,
            r"[0-9]{3}-[0-9]{2}-[0-9]{4}",
            |v| recognize::ssn(v, false),
            false,
        ),
        f(
            PiiType::IpAddress,
            r"(?:[0-9]{1,3}\.){3}[0-9]{1,3}|(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}",
            recognize::ip,
            false,
        ),
        f(
            PiiType::PhoneNumber,
            r"\+?\(?[0-9][0-9 ().-]{5,18}[0-9]",
            phone_in_text,
            true,
        ),
    ]
});

/// Characters a URL or e-mail found in a sentence does not end with.
const TRAILING: &[char] = &['.', ',', ';', ':', '!', '?'];

/// Whether `text[start..end]` stands alone: no letter or digit (or `+`, `@`,
/// `.` joining it to more) right before it, and no letter or digit right after.
/// A `.`, `-` or `/` next to it joins it to more only when a letter or
/// digit is on the other side (`1.2.3.4.5` holds no address; `8.8.8.8.`
/// ending a sentence does).
fn stands_alone(text: &str, start: usize, end: usize) -> bool {
    let mut before = text[..start].chars().rev();
    let mut after = text[end..].chars();
    let joins = |c: Option<char>, next: Option<char>, extra: &[char]| match c {
        Some(c) if c.is_alphanumeric() || c == '_' || c == '@' || extra.contains(&c) => true,
        Some('.' | '-' | '/') => next.is_some_and(char::is_alphanumeric),
        _ => false,
    };
    !joins(before.next(), before.next(), &['+']) && !joins(after.next(), after.next(), &[])
}

/// The entities of the self-evident types in `text`, in order, none overlapping.
pub fn find(text: &str) -> Vec<Span> {
    // Every type needs a digit, or an `@`, `://` or `www.`: most prose has
    // none of them and is passed over without running a pattern.
    let b = text.as_bytes();
    if !b.iter().any(|c| c.is_ascii_digit() || *c == b'@')
        && !text.contains("://")
        && !b.windows(4).any(|w| w.eq_ignore_ascii_case(b"www."))
    {
        return Vec::new();
    }
    let mut found: Vec<Span> = Vec::new();
    for f in FINDERS.iter() {
        let mut pos = 0;
        while let Some(m) = f.re.find_at(text, pos) {
            let start = m.start();
            let mut end = start + m.as_str().trim_end_matches(TRAILING).len();
            // The next search starts after this match, or after the part of
            // it that was kept (what follows may begin another entity).
            pos = m.end();
            loop {
                let cand = &text[start..end];
                if stands_alone(text, start, end) && (f.valid)(cand) {
                    if !found.iter().any(|s| s.start < end && start < s.end) {
                        found.push(Span {
                            start,
                            end,
                            ty: f.ty,
                        });
                    }
                    pos = end;
                    break;
                }
                // Drop the last space-separated group and try again.
                match cand.rfind(' ').filter(|_| f.shrink) {
                    Some(i) if i > 0 => end = start + i,
                    _ => break,
                }
            }
        }
    }
    found.sort_by_key(|s| s.start);
    found
}

/// `text` with each entity replaced by `<TYPE>`; `None` when it holds none.
pub fn redact(text: &str) -> Option<String> {
    let spans = find(text);
    if spans.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for s in &spans {
        out.push_str(&text[at..s.start]);
        out.push('<');
        out.push_str(s.ty.name());
        out.push('>');
        at = s.end;
    }
    out.push_str(&text[at..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn kinds(t: &str) -> Vec<(&str, &'static str)> {
        find(t)
            .iter()
            .map(|s| (&t[s.start..s.end], s.ty.name()))
            .collect()
    }

    #[test]
    fn entities_in_sentences_are_found_and_validated() {
        assert_eq!(
            kinds("Call me at (415) 555-2671 or mail jane.doe@corp.com."),
            [
                ("(415) 555-2671", "PHONE_NUMBER"),
                ("jane.doe@corp.com", "EMAIL_ADDRESS")
            ]
        );
        assert_eq!(
            kinds("card 4111 1111 1111 1111, ssn 123-45-6789; from 8.8.8.8"),
            [
                ("4111 1111 1111 1111", "CREDIT_CARD"),
                ("123-45-6789", "US_SSN"),
                ("8.8.8.8", "IP_ADDRESS")
            ]
        );
        assert_eq!(
            kinds("Pay to DE89 3704 0044 0532 0130 00 ASAP, see https://x.example.com/a?b=1."),
            [
                ("DE89 3704 0044 0532 0130 00", "IBAN_CODE"),
                ("https://x.example.com/a?b=1", "URL")
            ]
        );
        assert_eq!(
            kinds("Ring +44 20 7946 0958 tomorrow"),
            [("+44 20 7946 0958", "PHONE_NUMBER")]
        );
        // Two numbers in a row: the first is cut back, the second found too.
        assert_eq!(
            kinds("call 415-555-2671 212-555-0143 now; from 8.8.8.8."),
            [
                ("415-555-2671", "PHONE_NUMBER"),
                ("212-555-0143", "PHONE_NUMBER"),
                ("8.8.8.8", "IP_ADDRESS")
            ]
        );
    }

    #[test]
    fn lookalikes_are_not_entities() {
        for t in [
            "order 4111 1111 1111 1112 shipped", // fails Luhn
            "signed up 2021-03-15 at 10:30",     // a date, not a phone
            "ticket #123456789 reopened",        // bare digits
            "ssn 000-12-3456 is never issued",
            "version 1.2.3.4.5 released",
            "no digits or at-signs here at all",
            "total 1,234,567.89 USD",
        ] {
            assert_eq!(kinds(t), [], "{t}");
        }
        // A card number inside a longer run of digits is not one.
        assert_eq!(kinds("ref 9941111111111111119"), []);
    }

    #[test]
    fn urls_without_digits_are_still_looked_for() {
        assert_eq!(
            kinds("see WWW.Example.org or ftp://files.example.com today."),
            [
                ("WWW.Example.org", "URL"),
                ("ftp://files.example.com", "URL")
            ]
        );
    }

    #[test]
    fn redaction_replaces_each_span_and_keeps_the_rest() {
        assert_eq!(
            redact("Mail a@b.co, call 415-555-2671.").unwrap(),
            "Mail <EMAIL_ADDRESS>, call <PHONE_NUMBER>."
        );
        assert_eq!(redact("nothing to see"), None);
        // Overlaps: the e-mail wins over digits inside it.
        assert_eq!(
            redact("x 4155552671@mail.test y").unwrap(),
            "x <EMAIL_ADDRESS> y"
        );
        // Multi-byte text around entities stays whole.
        assert_eq!(
            redact("Écrire à zoë@exemple.fr — merci").unwrap(),
            "Écrire à <EMAIL_ADDRESS> — merci"
        );
    }
}
