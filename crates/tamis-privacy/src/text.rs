//! Personal data inside free text (notes, comments, messages).
//!
//! A column of free text has no PII type of its own, yet its cells may hold
//! an e-mail address, a phone number or a card number in a sentence. The
//! self-evident types are found here as spans: a pattern proposes a
//! candidate and the type's own validator ([`crate::recognize`]: checksums,
//! issuer prefixes, numbering plans) keeps it or not, so an order number is
//! not a card and a date is not a phone. Street addresses are found by a
//! pattern (a house number, capitalised words, a street suffix) and the
//! cell validator. Names are found without a language model, so only where
//! the text itself marks them ([`names`]): a title before capitalised words
//! (`Dr. Patel`), or a known first name then a known surname, both
//! capitalised (`John Smith`, `Mary J. Watson`); a name written in lower
//! case, a lone first name, or a surname the census lists do not hold is
//! not found.

use std::collections::HashSet;
use std::sync::{LazyLock, OnceLock};

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

/// Street suffixes that end an address in a sentence after any house
/// number (`5 Main St`). The rest of the USPS list (`Lights`, `Glen`,
/// `Points`, `Drives`, `Key`) ends one only after a house number of three
/// digits or more (`8337 Lucero Lights`): after a small count it is more
/// often a thing (`2 Hard Drives`, `3 Key Cards`).
const TEXT_SUFFIXES: &str = "street st avenue ave road rd boulevard blvd lane ln drive dr court ct way terrace ter circle cir parkway pkwy highway hwy place pl square sq trail trl crescent plaza";

/// A street line in a sentence: a house number (`221`, `12b`), capitalised
/// words (the pattern's) and a street suffix last (see [`TEXT_SUFFIXES`]).
/// A candidate that fails is cut back at spaces, so what follows the
/// suffix (`221 Baker Street Monday`, `8337 Lucero Lights Suite 760`) is
/// left out.
fn address_in_text(v: &str) -> bool {
    static S: OnceLock<HashSet<&'static str>> = OnceLock::new();
    let words: Vec<&str> = v.split(' ').collect();
    let (Some(first), Some(last)) = (words.first(), words.last()) else {
        return false;
    };
    let digits = first.bytes().take_while(u8::is_ascii_digit).count();
    let number = (1..=6).contains(&digits) && first.len() - digits <= 1;
    let suffix = last.trim_end_matches('.').to_lowercase();
    let suffix = suffix.as_str();
    let ends = recognize::vocab(&S, TEXT_SUFFIXES).contains(suffix)
        || (digits >= 3 && recognize::suffixes().contains(suffix));
    words.len() >= 3 && number && ends
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
            PiiType::StreetAddress,
            r"[0-9]{1,6}[A-Za-z]?(?: \p{Lu}[\p{L}'’-]*\.?){2,5}",
            address_in_text,
            true,
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
    let mut found: Vec<Span> = Vec::new();
    // Every pattern needs a digit, or an `@`, `://` or `www.`: most prose
    // has none of them and is passed over without running one.
    let b = text.as_bytes();
    let patterns = b.iter().any(|c| c.is_ascii_digit() || *c == b'@')
        || text.contains("://")
        || b.windows(4).any(|w| w.eq_ignore_ascii_case(b"www."));
    for f in FINDERS.iter().filter(|_| patterns) {
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
                    add(
                        &mut found,
                        Span {
                            start,
                            end,
                            ty: f.ty,
                        },
                    );
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
    for n in names(text) {
        add(&mut found, n);
    }
    found
}

/// Adds `s` to `found` (sorted, none overlapping) unless it overlaps one
/// there: a binary search, so a long cell full of entities is not quadratic.
fn add(found: &mut Vec<Span>, s: Span) {
    let at = found.partition_point(|x| x.start < s.end);
    // Of the spans starting before `s` ends, only the last can reach into it.
    if at > 0 && found[at - 1].end > s.start {
        return;
    }
    found.insert(at, s);
}

/// Titles a name follows (lower case, without a dot).
const TITLES: &[&str] = &[
    "mr",
    "mrs",
    "ms",
    "miss",
    "mx",
    "dr",
    "prof",
    "professor",
    "sir",
    "dame",
];

/// First names of the census list that, capitalised in a note, are more
/// often a word (a verb, a month, a virtue, a bank, a place): they begin a
/// name only after a title. `Will Call`, `Grant Park`, `Chase Bank`,
/// `Virginia Beach`, `Long Island`.
const WORD_FIRST_NAMES: &str = "santa valentine spring winter mercedes harley will mark bill grant may june april august art chase page hope faith grace joy rose sunny summer autumn dawn hunter king major guy pat rob ray earl sterling royal price miles drew frank christian norman victor wade penny ginger holly ivy iris violet amber crystal misty star stormy sky jack sonny buck chip rocky dusty randy young virginia georgia carolina florida dakota austin dallas houston jackson lincoln washington long";

/// Surnames of the census list that, after a capitalised first name, are
/// more often a place or a thing: `John Street`, `Mary Hall`, `Chase Bank`.
const WORD_SURNAMES: &str = "street park road avenue lane drive way court place square call card bank service number center centre house hall church office store shop company group team account credit billing payment delivery support new york city county state university college school hospital airport station beach springs falls hills hill island lake river valley heights point harbor bay port mount fort creek ridge grove gardens village town rapids woods forest field fields land monday tuesday wednesday thursday friday saturday sunday january february march april may june july august september october november december";

/// A word of a text: bytes `start..end`.
struct Word<'a> {
    start: usize,
    end: usize,
    text: &'a str,
    /// The word in lower case, made once for the title and name lists.
    lower: String,
    /// Only spaces separate it from the next word, or the dot of an
    /// initial or a title and spaces (a name does not run on across a
    /// comma, a dash, a sentence's end or a line end).
    joined: bool,
}

/// The words of `text`: runs of letters with `'`, `’` or `-` inside.
fn words(text: &str) -> Vec<Word<'_>> {
    let mut out: Vec<Word<'_>> = Vec::new();
    let mut it = text.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        if !c.is_alphabetic() {
            continue;
        }
        let mut end = i + c.len_utf8();
        while let Some(&(j, d)) = it.peek() {
            let inner = matches!(d, '\'' | '’' | '-')
                && text[j + d.len_utf8()..]
                    .chars()
                    .next()
                    .is_some_and(char::is_alphabetic);
            if d.is_alphabetic() || inner {
                end = j + d.len_utf8();
                it.next();
            } else {
                break;
            }
        }
        let rest = &text[end..];
        let dot = rest.starts_with('.');
        let gap = rest.strip_prefix('.').unwrap_or(rest);
        let spaces = gap.len() - gap.trim_start_matches(' ').len();
        let lower = text[i..end].to_lowercase();
        // A dot ends a sentence unless it ends an initial or a title.
        let abbreviation = || text[i..end].chars().count() == 1 || TITLES.contains(&lower.as_str());
        let joined = spaces > 0
            && gap[spaces..].starts_with(char::is_alphabetic)
            && (!dot || abbreviation());
        out.push(Word {
            start: i,
            end,
            text: &text[i..end],
            lower,
            joined,
        });
    }
    out
}

/// A capitalised word of two letters or more, not all capitals (`VIP`,
/// `USA` are not names): `Smith`, `O'Brien`, `McDonald`, `Jean-Luc`.
fn capitalised(w: &str) -> bool {
    let mut cs = w.chars();
    cs.next().is_some_and(char::is_uppercase)
        && w.chars().count() >= 2
        && w.chars().any(char::is_lowercase)
}

/// An initial: one capital letter (`J` or `J.`).
fn initial(w: &Word<'_>) -> bool {
    let mut cs = w.text.chars();
    cs.next().is_some_and(char::is_uppercase) && cs.next().is_none()
}

/// A word's form for the name lists: lower case, a possessive `'s` dropped.
fn lookup<'w>(w: &'w Word<'_>) -> &'w str {
    let l = w.lower.as_str();
    l.strip_suffix("'s")
        .or_else(|| l.strip_suffix("’s"))
        .unwrap_or(l)
}

/// End of a name word, a possessive `'s` left out of the span.
fn name_end(w: &Word<'_>) -> usize {
    let t = w.text;
    let cut = t
        .strip_suffix("'s")
        .or_else(|| t.strip_suffix("’s"))
        .map_or(0, |s| t.len() - s.len());
    w.end - cut
}

/// Person names the text itself marks: after a title, up to three
/// capitalised words or initials ending in a word (`Dr. Ana Patel`, `Ms
/// Okafor`); or a known first name, an optional initial or second first
/// name, and a known surname, every word capitalised and only spaces
/// between them. See [`WORD_FIRST_NAMES`] and [`WORD_SURNAMES`] for the
/// census names left out where they read as words.
pub fn names(text: &str) -> Vec<Span> {
    // A name needs an upper-case letter followed by a lower-case one.
    if !text.chars().any(char::is_uppercase) {
        return Vec::new();
    }
    let ws = words(text);
    let firsts = recognize::first_names();
    let lasts = recognize::last_names();
    static WF: OnceLock<HashSet<&'static str>> = OnceLock::new();
    static WL: OnceLock<HashSet<&'static str>> = OnceLock::new();
    let word_firsts = recognize::vocab(&WF, WORD_FIRST_NAMES);
    let word_lasts = recognize::vocab(&WL, WORD_SURNAMES);
    let first_ok = |w: &Word<'_>| {
        capitalised(w.text) && firsts.contains(lookup(w)) && !word_firsts.contains(lookup(w))
    };
    let last_ok = |w: &Word<'_>| {
        capitalised(w.text) && lasts.contains(lookup(w)) && !word_lasts.contains(lookup(w))
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < ws.len() {
        let w = &ws[i];
        let lower = w.lower.as_str();
        // `Dr` right after a capitalised word, without a dot, is a street's
        // (`Oak Dr Springfield`); `Miss` and `Ms` are words too (`Don't Miss
        // Out`, `Ms Teams`): a name must follow them from the lists.
        let drive = lower == "dr"
            && !text[w.end..].starts_with('.')
            && i > 0
            && ws[i - 1].joined
            && capitalised(ws[i - 1].text);
        let listed = |n: &Word<'_>| firsts.contains(lookup(n)) || lasts.contains(lookup(n));
        let title = TITLES.contains(&lower)
            && capitalised(w.text)
            && !drive
            && (!matches!(lower, "miss" | "ms") || ws.get(i + 1).is_some_and(listed));
        if title && w.joined {
            // Up to three name words or initials after it, ending in a word.
            let mut last = None;
            let mut j = i + 1;
            while j < ws.len() && j <= i + 3 {
                let n = &ws[j];
                if capitalised(n.text) {
                    last = Some(j);
                } else if !initial(n) {
                    break;
                }
                if !n.joined {
                    break;
                }
                j += 1;
            }
            if let Some(l) = last {
                out.push(Span {
                    start: ws[i + 1].start,
                    end: name_end(&ws[l]),
                    ty: PiiType::Person,
                });
                i = l + 1;
                continue;
            }
        } else if w.joined && first_ok(w) {
            // First [initial | first name] surname.
            let mut j = i + 1;
            if j + 1 < ws.len()
                && ws[j].joined
                && (initial(&ws[j]) || (first_ok(&ws[j]) && last_ok(&ws[j + 1])))
            {
                j += 1;
            }
            if j < ws.len() && last_ok(&ws[j]) {
                out.push(Span {
                    start: w.start,
                    end: name_end(&ws[j]),
                    ty: PiiType::Person,
                });
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    out
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
    fn names_the_text_marks_are_found() {
        assert_eq!(
            kinds("Called John Smith about billing"),
            [("John Smith", "PERSON")]
        );
        assert_eq!(
            kinds("Spoke to Dr. Ana Patel and Ms Okafor; cc Mary J. Watson."),
            [
                ("Ana Patel", "PERSON"),
                ("Okafor", "PERSON"),
                ("Mary J. Watson", "PERSON")
            ]
        );
        assert_eq!(
            kinds("Mary Ann Robinson's card 4111 1111 1111 1111 on file"),
            [
                ("Mary Ann Robinson", "PERSON"),
                ("4111 1111 1111 1111", "CREDIT_CARD")
            ]
        );
        assert_eq!(
            kinds("Ship to 221 Baker St. by Friday"),
            [("221 Baker St", "STREET_ADDRESS")]
        );
        assert_eq!(
            kinds("Visit 221 Baker Street Monday with Ms Smith"),
            [("221 Baker Street", "STREET_ADDRESS"), ("Smith", "PERSON")]
        );
        assert_eq!(
            kinds("Lives on 12 Oak Dr Springfield"),
            [("12 Oak Dr", "STREET_ADDRESS")]
        );
        assert_eq!(
            kinds("Ship to 8337 Lucero Lights Suite 760, Matthewtown"),
            [("8337 Lucero Lights", "STREET_ADDRESS")]
        );
        assert_eq!(
            kinds("Moved to 1600 Pennsylvania Avenue, per Mrs. O'Brien"),
            [
                ("1600 Pennsylvania Avenue", "STREET_ADDRESS"),
                ("O'Brien", "PERSON")
            ]
        );
    }

    #[test]
    fn many_entities_in_one_cell_come_in_order() {
        let text: String = (0..2000)
            .map(|i| format!("u{i}@x.org 415-555-2671 "))
            .collect();
        let spans = find(&text);
        assert_eq!(spans.len(), 4000);
        assert!(spans.windows(2).all(|w| w[0].end <= w[1].start));
        assert!(
            spans
                .iter()
                .step_by(2)
                .all(|s| s.ty == PiiType::EmailAddress)
        );
    }

    #[test]
    fn words_that_look_like_names_are_not_names() {
        for t in [
            "Called about billing",
            "VIP, requested callback",
            "Prefers email contact",
            "Met at Grant Park near Chase Bank",
            "Will Call pickup on May Day",
            "Office on John Street in New York",
            "JOHN SMITH in capitals is a heading",
            "john smith in lower case is not marked",
            "Talked to Anna. Smith Corp called back", // a sentence ends
            "Anna, Smith and Jones",                  // a list, not a name
            "Paid in cash at 10 Downing",             // no street suffix
            "Don't Miss Out on the Spring Sale",
            "moved the call to Ms Teams",
            "Santa Monica office, Valentine's Day promo",
            "Ordered 2 Hard Drives and 3 Key Cards",
            "Apollo 11 Mission Control",
        ] {
            assert_eq!(kinds(t), [], "{t}");
        }
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
