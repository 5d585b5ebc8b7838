//! What a value looks like: its shape pattern, its recognised format, and
//! what a column's name suggests it holds.
//!
//! Every check here is a hand-written byte scan, not a regex: they run per
//! value on columns with many distinct values and must stay in the tens of
//! nanoseconds.

use serde::{Deserialize, Serialize};
use tamis_core::swar::{eq_mask, splat};
use tamis_core::types::{parse_date, parse_datetime};

/// Longest pattern kept; longer ones end in `…`.
pub const PATTERN_MAX: usize = 32;

/// Writes the shape pattern of `v` into `out`: `A` upper, `a` lower, `9`
/// digit, other characters as themselves; a run of letters of one case
/// collapses to one letter (`Aa` for a capitalised word), digits do not
/// (their count matters: phones, postcodes).
pub fn pattern_into(v: &str, out: &mut String) {
    out.clear();
    let mut last: u8 = 0; // 0 none, b'A', b'a', b'W' (capitalised word)
    for c in v.chars() {
        if out.len() >= PATTERN_MAX {
            out.push('…');
            return;
        }
        if c.is_alphabetic() {
            let up = c.is_uppercase();
            match (last, up) {
                (b'A', true) | (b'a', false) | (b'W', false) => {}
                (b'A', false) => {
                    // "Ab": a capitalised word, shown as "Aa"
                    out.push('a');
                    last = b'W';
                }
                _ => {
                    out.push(if up { 'A' } else { 'a' });
                    last = if up { b'A' } else { b'a' };
                }
            }
            continue;
        }
        last = 0;
        if c.is_ascii_digit() {
            out.push('9');
        } else if c.is_whitespace() {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
}

/// A recognised value format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueFormat {
    /// `name@domain.tld`
    Email,
    /// Phone number (7-15 digits with phone punctuation).
    Phone,
    /// http(s)/ftp URL or `www.` address.
    Url,
    /// IPv4 address.
    Ipv4,
    /// IPv6 address.
    Ipv6,
    /// UUID 8-4-4-4-12.
    Uuid,
    /// A date in a common format.
    Date,
    /// An ISO datetime.
    Datetime,
    /// 13-19 digits passing the Luhn check.
    CardLike,
    /// US ZIP (5 or 5+4), UK or Canadian postcode shape.
    PostcodeLike,
}

impl ValueFormat {
    /// Name used in output.
    pub fn name(self) -> &'static str {
        match self {
            ValueFormat::Email => "email",
            ValueFormat::Phone => "phone",
            ValueFormat::Url => "url",
            ValueFormat::Ipv4 => "ipv4",
            ValueFormat::Ipv6 => "ipv6",
            ValueFormat::Uuid => "uuid",
            ValueFormat::Date => "date",
            ValueFormat::Datetime => "datetime",
            ValueFormat::CardLike => "card_like",
            ValueFormat::PostcodeLike => "postcode_like",
        }
    }
}

/// [`detect_format`] where only whether a value is `want` matters: a value
/// that cannot be `want` answers `None` without the full detection (a phone
/// number is not tried as a date, a datetime and an IP address).
#[inline]
pub fn detect_if(v: &str, want: ValueFormat) -> Option<ValueFormat> {
    if want == ValueFormat::Phone {
        // What `detect_format` needs of a phone: every byte a digit or a
        // separator, and 7 to 15 digits. Of the formats it tries before,
        // only a date (of exactly 10 bytes) or an IPv4 address can be made
        // of those bytes alone (no letters, '@' or ':'; a UUID has 32 digits).
        let b = v.as_bytes();
        let s = match digit_shape(b) {
            Some(s) if (7..=15).contains(&s.digits) && b.len() <= 254 => s,
            _ => return None,
        };
        if b.len() == 10 && parse_date(v).is_some() {
            return Some(ValueFormat::Date);
        }
        // An IPv4 address is digits and exactly three dots.
        if s.dots == 3 && s.seps == 3 && is_ipv4(b) {
            return Some(ValueFormat::Ipv4);
        }
        return digit_formats(b, s);
    }
    detect_format(v)
}

/// What a value made only of digits and phone separators is made of.
#[derive(Debug, Clone, Copy, Default)]
struct DigitShape {
    digits: usize,
    /// Separators of every kind (dots, slashes and parentheses included).
    seps: usize,
    dots: usize,
    slashes: usize,
    open_parens: usize,
}

/// The [`DigitShape`] of a value made only of digits and phone separators,
/// counted in one pass; `None` if it holds any other byte.
#[inline]
fn digit_shape(b: &[u8]) -> Option<DigitShape> {
    let mut s = DigitShape::default();
    for &c in b {
        match c {
            b'0'..=b'9' => s.digits += 1,
            b' ' | b'-' | b')' | b'+' => s.seps += 1,
            b'.' => {
                s.seps += 1;
                s.dots += 1;
            }
            b'/' => {
                s.seps += 1;
                s.slashes += 1;
            }
            b'(' => {
                s.seps += 1;
                s.open_parens += 1;
            }
            _ => return None,
        }
    }
    Some(s)
}

/// Recognises the format of a (trimmed, non-empty) value.
pub fn detect_format(v: &str) -> Option<ValueFormat> {
    let b = v.as_bytes();
    let n = b.len();
    if !(3..=254).contains(&n) {
        return None;
    }
    if let Some(m) = email_marks(b) {
        return is_email(b, m).then_some(ValueFormat::Email);
    }
    let first = b[0];
    if first.is_ascii_alphabetic() {
        if starts_with_ci(b, b"http://")
            || starts_with_ci(b, b"https://")
            || starts_with_ci(b, b"ftp://")
            || starts_with_ci(b, b"www.")
        {
            return (!b.contains(&b' ')).then_some(ValueFormat::Url);
        }
        if n == 36 && is_uuid(b) {
            return Some(ValueFormat::Uuid);
        }
        if b.contains(&b':') && n >= 3 && v.parse::<std::net::Ipv6Addr>().is_ok() {
            return Some(ValueFormat::Ipv6);
        }
        if parse_date(v).is_some() {
            return Some(ValueFormat::Date);
        }
        if is_postcode_alpha(b) {
            return Some(ValueFormat::PostcodeLike);
        }
        return None;
    }
    if n == 36 && is_uuid(b) {
        return Some(ValueFormat::Uuid);
    }
    if b.contains(&b':') && v.parse::<std::net::Ipv6Addr>().is_ok() {
        return Some(ValueFormat::Ipv6);
    }
    if parse_date(v).is_some() {
        return Some(ValueFormat::Date);
    }
    if n >= 16 && parse_datetime(v).is_some() {
        return Some(ValueFormat::Datetime);
    }
    if is_ipv4(b) {
        return Some(ValueFormat::Ipv4);
    }
    digit_formats(b, digit_shape(b)?)
}

/// The formats of a value made only of digits and phone separators (with
/// that many of each) that is not a date or an IPv4 address: postcode,
/// card number or phone.
fn digit_formats(b: &[u8], s: DigitShape) -> Option<ValueFormat> {
    let n = b.len();
    let first = b[0];
    let digits = s.digits;
    if (n == 5 && digits == 5) || (n == 10 && digits == 9 && b[5] == b'-') {
        return Some(ValueFormat::PostcodeLike);
    }
    if (13..=19).contains(&digits) && s.dots == 0 && s.open_parens == 0 && luhn(b) {
        return Some(ValueFormat::CardLike);
    }
    if (7..=15).contains(&digits)
        && (s.seps > 0 || first == b'+' || digits == 10 || digits == 11)
        && s.slashes == 0
    {
        // a plain number with one dot is a decimal, not a phone
        if s.dots == 1 && s.seps == 1 {
            return None;
        }
        return Some(ValueFormat::Phone);
    }
    None
}

fn starts_with_ci(b: &[u8], p: &[u8]) -> bool {
    b.len() >= p.len() && b[..p.len()].eq_ignore_ascii_case(p)
}

/// What [`is_email`] needs of a value holding an `@`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EmailMarks {
    /// The first `@`.
    at: usize,
    /// How many `@` there are.
    ats: u32,
    /// Whether there is a space.
    space: bool,
    /// The last `.`.
    dot: Option<usize>,
}

/// Eight bytes (a value's, then zeros) as a little-endian word.
#[inline]
fn word_of(bytes: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w[..bytes.len()].copy_from_slice(bytes);
    u64::from_le_bytes(w)
}

/// The [`EmailMarks`] of `b`, `None` when it holds no `@`: one pass, eight
/// bytes at a time.
///
/// Eight bytes at a time with [`tamis_core::swar`]: it runs at every value
/// of an e-mail column, and the three `memchr` calls and the reverse scan
/// it replaced cost more in set-up than in scanning on values of 20 to 30
/// bytes.
#[inline]
fn email_marks(b: &[u8]) -> Option<EmailMarks> {
    let mut m = EmailMarks {
        at: usize::MAX,
        ats: 0,
        space: false,
        dot: None,
    };
    let mut mark = |i: usize, w: u64| {
        let a = eq_mask(w, splat(b'@'));
        if a != 0 {
            if m.ats == 0 {
                m.at = i + (a.trailing_zeros() / 8) as usize;
            }
            m.ats += a.count_ones();
        }
        m.space |= eq_mask(w, splat(b' ')) != 0;
        let d = eq_mask(w, splat(b'.'));
        if d != 0 {
            m.dot = Some(i + ((63 - d.leading_zeros()) / 8) as usize);
        }
    };
    let words = b.chunks_exact(8);
    let rest = words.remainder();
    let mut i = 0;
    for w in words {
        mark(i, word_of(w));
        i += 8;
    }
    if !rest.is_empty() {
        mark(i, word_of(rest));
    }
    (m.ats > 0).then_some(m)
}

/// Whether `b` (with its [`EmailMarks`] `m`) is `name@domain.tld`: one `@`,
/// not first and with at least three bytes after it, no space, and a dot in
/// the domain, not its first byte, followed by two letters or more.
fn is_email(b: &[u8], m: EmailMarks) -> bool {
    let n = b.len();
    if m.ats != 1 || m.space || m.at == 0 || m.at + 3 >= n {
        return false;
    }
    match m.dot {
        Some(dot) => {
            dot > m.at + 1 && dot + 2 < n && b[dot + 1..].iter().all(u8::is_ascii_alphabetic)
        }
        None => false,
    }
}

fn is_uuid(b: &[u8]) -> bool {
    b.iter().enumerate().all(|(i, &c)| {
        if matches!(i, 8 | 13 | 18 | 23) {
            c == b'-'
        } else {
            c.is_ascii_hexdigit()
        }
    })
}

fn is_ipv4(b: &[u8]) -> bool {
    let mut parts = 0;
    for p in b.split(|&c| c == b'.') {
        parts += 1;
        if p.is_empty() || p.len() > 3 || !p.iter().all(|c| c.is_ascii_digit()) {
            return false;
        }
        let v: u32 = p.iter().fold(0, |a, &c| a * 10 + (c - b'0') as u32);
        if v > 255 {
            return false;
        }
    }
    parts == 4
}

fn is_postcode_alpha(b: &[u8]) -> bool {
    // UK: A9 9AA, A99 9AA, AA9 9AA, AA99 9AA, A9A 9AA, AA9A 9AA; Canada: A9A 9A9
    let s: Vec<u8> = b.iter().copied().filter(|c| *c != b' ').collect();
    let n = s.len();
    if !(5..=7).contains(&n) {
        return false;
    }
    let cls = |c: u8| {
        if c.is_ascii_digit() {
            b'9'
        } else if c.is_ascii_uppercase() {
            b'A'
        } else {
            b'?'
        }
    };
    let p: Vec<u8> = s.iter().map(|&c| cls(c)).collect();
    if p.contains(&b'?') {
        return false;
    }
    let inward = &p[n - 3..];
    let outward = &p[..n - 3];
    let uk = inward == b"9AA"
        && matches!(
            outward,
            b"A9" | b"A99" | b"AA9" | b"AA99" | b"A9A" | b"AA9A"
        );
    let ca = p == b"A9A9A9";
    uk || ca
}

/// The Luhn checksum over the digits of `b`.
pub fn luhn(b: &[u8]) -> bool {
    let mut sum = 0u32;
    let mut double = false;
    for &c in b.iter().rev() {
        if !c.is_ascii_digit() {
            continue;
        }
        let mut d = (c - b'0') as u32;
        if double {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        double = !double;
    }
    sum.is_multiple_of(10)
}

/// What a column's name says about its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NameHint {
    /// age, years_old
    Age,
    /// dob, birth_date, date_of_birth, geburtsdatum, date_naissance
    BirthDate,
    /// id, *_id, uuid, key
    Id,
    /// email, e_mail, mail, courriel
    Email,
    /// phone, tel, mobile, cell
    Phone,
    /// first/last/full name
    PersonName,
    /// zip, postcode, postal_code, plz
    Postcode,
    /// city, town
    City,
    /// state, province, region
    State,
    /// country
    Country,
    /// address, street
    Address,
    /// income, salary, price, amount, revenue, cost
    Money,
    /// status, type, category, kind, segment
    Category,
    /// url, website, link
    Url,
    /// ip, ip_address
    Ip,
}

/// Guesses a hint from a column name (any case, `_`/`-`/space/camelCase separated).
pub fn name_hint(name: &str) -> Option<NameHint> {
    let mut norm = String::with_capacity(name.len() + 4);
    let mut prev_lower = false;
    for c in name.chars() {
        if c.is_uppercase() && prev_lower {
            norm.push('_');
        }
        prev_lower = c.is_lowercase();
        if c.is_alphanumeric() {
            norm.extend(c.to_lowercase());
        } else {
            norm.push('_');
        }
    }
    let words: Vec<&str> = norm.split('_').filter(|w| !w.is_empty()).collect();
    let has = |w: &str| words.contains(&w);
    let joined = words.join("_");
    use NameHint::*;
    Some(
        if has("dob")
            || joined.contains("birth")
            || has("geburtsdatum")
            || joined.contains("naissance")
            || has("birthday")
        {
            BirthDate
        } else if has("age") || joined == "years_old" || has("alter") {
            Age
        } else if has("email") || has("mail") || has("courriel") || joined == "e_mail" {
            Email
        } else if has("phone")
            || has("tel")
            || has("telephone")
            || has("mobile")
            || has("cell")
            || has("fax")
            || has("telefon")
        {
            Phone
        } else if has("url") || has("website") || has("link") || has("homepage") {
            Url
        } else if has("ip") {
            Ip
        } else if has("zip")
            || has("zipcode")
            || has("postcode")
            || has("plz")
            || joined.contains("postal")
        {
            Postcode
        } else if (has("name")
            && (has("first")
                || has("last")
                || has("full")
                || has("given")
                || has("family")
                || has("middle")
                || words.len() == 1))
            || has("firstname")
            || has("lastname")
            || has("surname")
            || has("fullname")
        {
            PersonName
        } else if has("city") || has("town") || has("ville") || has("stadt") {
            City
        } else if has("state") || has("province") || has("region") {
            State
        } else if has("country") || has("pays") || has("land") {
            Country
        } else if has("address") || has("street") || has("addr") || has("adresse") {
            Address
        } else if has("income")
            || has("salary")
            || has("price")
            || has("amount")
            || has("revenue")
            || has("cost")
            || has("wage")
        {
            Money
        } else if has("id")
            || has("uuid")
            || has("guid")
            || has("key")
            || joined.ends_with("_id")
            || has("pk")
        {
            Id
        } else if has("status")
            || has("type")
            || has("category")
            || has("kind")
            || has("segment")
            || has("tier")
            || has("gender")
        {
            Category
        } else {
            return None;
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(v: &str) -> String {
        let mut s = String::new();
        pattern_into(v, &mut s);
        s
    }

    #[test]
    fn patterns() {
        assert_eq!(pat("John Smith"), "Aa Aa");
        assert_eq!(pat("(555) 123-4567"), "(999) 999-9999");
        assert_eq!(pat("john.smith42@mail.com"), "a.a99@a.a");
        assert_eq!(pat("NY"), "A");
    }

    #[test]
    fn formats_and_near_misses() {
        use ValueFormat::*;
        for (v, f) in [
            ("a.b@example.com", Some(Email)),
            ("first.last+tag@mail.example.co.uk", Some(Email)),
            ("a@b", None),
            ("a@b.c", None),
            ("a@.com", None),
            ("@b.com", None),
            ("a@b@c.com", None),
            ("a b@example.com", None),
            ("a@example.com ", None),
            ("a@example.c0m", None),
            ("a.b@example", None),
            ("a@example.com.", None),
            ("ab@example.c", None),
            ("(555) 123-4567", Some(Phone)),
            ("+1 555 123 4567", Some(Phone)),
            ("5551234567", Some(Phone)),
            ("12.5", None),
            ("https://x.org/a", Some(Url)),
            ("192.168.0.1", Some(Ipv4)),
            ("256.1.1.1", None),
            ("2001:db8::1", Some(Ipv6)),
            ("123e4567-e89b-12d3-a456-426614174000", Some(Uuid)),
            ("2024-01-31", Some(Date)),
            ("2024-01-31T10:00:00Z", Some(Datetime)),
            ("4111 1111 1111 1111", Some(CardLike)),
            ("4111 1111 1111 1112", None),
            ("90210", Some(PostcodeLike)),
            ("SW1A 1AA", Some(PostcodeLike)),
            ("K1A 0B1", Some(PostcodeLike)),
            ("hello", None),
        ] {
            assert_eq!(detect_format(v), f, "{v}");
        }
    }

    /// The e-mail check as first written (three searches and a reverse
    /// scan), the reference for the one-pass [`email_marks`].
    fn email_plainly(b: &[u8]) -> Option<bool> {
        let at = b.iter().position(|&c| c == b'@')?;
        if at == 0 || at + 3 >= b.len() || b[at + 1..].contains(&b'@') || b.contains(&b' ') {
            return Some(false);
        }
        let domain = &b[at + 1..];
        Some(match domain.iter().rposition(|&c| c == b'.') {
            Some(dot) => {
                dot > 0
                    && dot + 2 < domain.len() + 1
                    && domain[dot + 1..].iter().all(|c| c.is_ascii_alphabetic())
                    && domain.len() - dot > 2
            }
            None => false,
        })
    }

    proptest::proptest! {
        /// The one-pass e-mail check answers as the plain reading does, on
        /// values around every word boundary and with the bytes it looks for.
        #[test]
        fn email_check_agrees_with_the_plain_reading(
            v in proptest::prop_oneof![
                "[a-c@. 0]{0,40}",
                "[a-z.]{0,12}@[a-z]{0,12}\\.[a-z0-9]{0,4}",
                "[a-zé.@]{0,20}",
            ],
        ) {
            let b = v.as_bytes();
            proptest::prop_assert_eq!(email_marks(b).map(|m| is_email(b, m)), email_plainly(b));
        }

        /// The shortcut answers what the full detection answers, for the
        /// format asked about.
        #[test]
        fn detect_if_agrees_with_detect_format(
            v in proptest::prop_oneof![
                "[0-9 ().+/:@a-fA-F-]{0,24}",
                "[0-9]{7}[ ]{240,260}[0-9]",
                "[0-9]{4}[-/.][0-9]{2}[-/.][0-9]{2}",
                "[0-9]{2}[-/.][0-9]{2}[-/.][0-9]{4}",
                "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,4}",
                "[0-9]{5}-[0-9]{4}",
                "\\+?[0-9]{13,16}",
                "\\(?[0-9]{3}\\)?[ .-]?[0-9]{3}[ .-]?[0-9]{4}",
            ],
            want in proptest::sample::select(vec![
                ValueFormat::Phone, ValueFormat::Email, ValueFormat::Ipv4, ValueFormat::Url,
            ]),
        ) {
            proptest::prop_assert_eq!(
                detect_if(&v, want) == Some(want),
                detect_format(&v) == Some(want)
            );
        }
    }

    #[test]
    fn hints_from_names() {
        assert_eq!(name_hint("customer_id"), Some(NameHint::Id));
        assert_eq!(name_hint("DateOfBirth"), Some(NameHint::BirthDate));
        assert_eq!(name_hint("geburtsdatum"), Some(NameHint::BirthDate));
        assert_eq!(name_hint("age"), Some(NameHint::Age));
        assert_eq!(name_hint("first_name"), Some(NameHint::PersonName));
        assert_eq!(name_hint("signup_date"), None);
        assert_eq!(name_hint("courriel"), Some(NameHint::Email));
        assert_eq!(name_hint("status"), Some(NameHint::Category));
        assert_eq!(name_hint("page"), None);
    }
}
