//! Cell recognisers. Each validates what a pattern alone cannot: Luhn and
//! issuer ranges for cards, SSA rules for SSNs, mod-97 and country lengths for
//! IBANs, Base58Check for Bitcoin addresses, real parses for IPs and dates.
//! Written by hand because they run on every cell and must cost microseconds;
//! no crate covers this set with these validations.

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// A kind of personal data (names as Presidio's entity types where one exists).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PiiType {
    /// A person's name.
    Person,
    /// An e-mail address.
    EmailAddress,
    /// A phone number.
    PhoneNumber,
    /// A payment card number.
    CreditCard,
    /// A US social security number.
    UsSsn,
    /// An IPv4 or IPv6 address.
    IpAddress,
    /// An IBAN.
    IbanCode,
    /// A street address.
    StreetAddress,
    /// A date of birth.
    DateOfBirth,
    /// A URL.
    Url,
    /// A MAC address.
    MacAddress,
    /// A cryptocurrency wallet address.
    CryptoWallet,
    /// A passport number (header only).
    Passport,
    /// A national identity or tax number.
    NationalId,
}

impl PiiType {
    /// Every type.
    pub const ALL: [PiiType; 14] = [
        PiiType::Person,
        PiiType::EmailAddress,
        PiiType::PhoneNumber,
        PiiType::CreditCard,
        PiiType::UsSsn,
        PiiType::IpAddress,
        PiiType::IbanCode,
        PiiType::StreetAddress,
        PiiType::DateOfBirth,
        PiiType::Url,
        PiiType::MacAddress,
        PiiType::CryptoWallet,
        PiiType::Passport,
        PiiType::NationalId,
    ];

    /// The type with this entity name (any case).
    pub fn named(s: &str) -> Option<PiiType> {
        PiiType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
    }

    /// The entity name (Presidio's where one exists).
    pub fn name(self) -> &'static str {
        match self {
            PiiType::Person => "PERSON",
            PiiType::EmailAddress => "EMAIL_ADDRESS",
            PiiType::PhoneNumber => "PHONE_NUMBER",
            PiiType::CreditCard => "CREDIT_CARD",
            PiiType::UsSsn => "US_SSN",
            PiiType::IpAddress => "IP_ADDRESS",
            PiiType::IbanCode => "IBAN_CODE",
            PiiType::StreetAddress => "STREET_ADDRESS",
            PiiType::DateOfBirth => "DATE_OF_BIRTH",
            PiiType::Url => "URL",
            PiiType::MacAddress => "MAC_ADDRESS",
            PiiType::CryptoWallet => "CRYPTO",
            PiiType::Passport => "PASSPORT",
            PiiType::NationalId => "NATIONAL_ID",
        }
    }
}

fn digits_of(v: &str) -> String {
    v.chars().filter(|c| c.is_ascii_digit()).collect()
}

/// Luhn checksum.
pub fn luhn(d: &str) -> bool {
    let mut sum = 0;
    for (i, c) in d.bytes().rev().enumerate() {
        let mut x = (c - b'0') as u32;
        if i % 2 == 1 {
            x *= 2;
            if x > 9 {
                x -= 9;
            }
        }
        sum += x;
    }
    !d.is_empty() && sum % 10 == 0
}

fn prefix_in(d: &str, len: usize, lo: u32, hi: u32) -> bool {
    d.get(..len)
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| (lo..=hi).contains(&p))
}

/// A card number: 12–19 digits (spaces or dashes between groups), Luhn-valid,
/// with a known issuer prefix and a length that issuer uses.
pub fn card(v: &str) -> bool {
    let t = v.trim();
    if !t
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b' ' || b == b'-')
        || !t.as_bytes().first().is_some_and(u8::is_ascii_digit)
    {
        return false;
    }
    let d = digits_of(t);
    let n = d.len();
    if !(12..=19).contains(&n) || !luhn(&d) {
        return false;
    }
    let visa = d.starts_with('4') && matches!(n, 13 | 16 | 19);
    let mc = (prefix_in(&d, 2, 51, 55) || prefix_in(&d, 4, 2221, 2720)) && n == 16;
    let amex = (d.starts_with("34") || d.starts_with("37")) && n == 15;
    let discover = (d.starts_with("6011")
        || prefix_in(&d, 3, 644, 649)
        || d.starts_with("65")
        || prefix_in(&d, 6, 622126, 622925))
        && (16..=19).contains(&n);
    // JCB's assigned range is 3528–3589; generators and some issuers use all of 35xx.
    let jcb = (d.starts_with("35") && (16..=19).contains(&n))
        || ((d.starts_with("2131") || d.starts_with("1800")) && n == 15);
    let diners = (prefix_in(&d, 3, 300, 305)
        || d.starts_with("36")
        || d.starts_with("38")
        || d.starts_with("39")
        || d.starts_with("309"))
        && (14..=19).contains(&n);
    // Maestro, including the former UK Maestro/Solo range 0604.
    let maestro = (d.starts_with("50") || prefix_in(&d, 2, 56, 69) || d.starts_with("0604"))
        && (12..=19).contains(&n);
    let unionpay = d.starts_with("62") && (16..=19).contains(&n);
    let mir = prefix_in(&d, 4, 2200, 2204) && (16..=19).contains(&n);
    visa || mc || amex || discover || jcb || diners || maestro || unionpay || mir
}

/// A US SSN `AAA-GG-SSSS` (or 9 digits when `undashed` is allowed); areas 000,
/// 666 and 900–999, group 00 and serial 0000 are never issued.
pub fn ssn(v: &str, undashed: bool) -> bool {
    let t = v.trim();
    let b = t.as_bytes();
    let d: String = if b.len() == 11 && b[3] == b'-' && b[6] == b'-' {
        t.replace('-', "")
    } else if undashed && b.len() == 9 {
        t.to_string()
    } else {
        return false;
    };
    if d.len() != 9 || !d.bytes().all(|c| c.is_ascii_digit()) {
        return false;
    }
    let area: u32 = d[0..3].parse().unwrap_or(0);
    area != 0 && area != 666 && area < 900 && &d[3..5] != "00" && &d[5..9] != "0000"
}

/// An e-mail address.
pub fn email(v: &str) -> bool {
    let t = v.trim();
    let Some((local, domain)) = t.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !local.contains(char::is_whitespace)
        && !local.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_alphanumeric() || c == '-'))
        && domain
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(char::is_alphabetic))
}

/// An IPv4 or IPv6 address.
pub fn ip(v: &str) -> bool {
    let t = v.trim();
    t.parse::<Ipv4Addr>().is_ok() || (t.contains(':') && t.parse::<Ipv6Addr>().is_ok())
}

/// A URL with a scheme, or `www.` host.
pub fn url(v: &str) -> bool {
    let t = v.trim();
    let rest = ["http://", "https://", "ftp://", "www."]
        .iter()
        .find_map(|s| {
            t.get(..s.len())
                .filter(|p| p.eq_ignore_ascii_case(s))
                .map(|_| &t[s.len()..])
        });
    let Some(rest) = rest else { return false };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |x| x.1);
    let host = host.split(':').next().unwrap_or("");
    !t.contains(char::is_whitespace)
        && (host.contains('.') || host == "localhost")
        && host
            .chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '-')
}

fn iban_length(country: &str) -> Option<usize> {
    const L: &[(&str, usize)] = &[
        ("AD", 24),
        ("AE", 23),
        ("AL", 28),
        ("AT", 20),
        ("AZ", 28),
        ("BA", 20),
        ("BE", 16),
        ("BG", 22),
        ("BH", 22),
        ("BR", 29),
        ("BY", 28),
        ("CH", 21),
        ("CR", 22),
        ("CY", 28),
        ("CZ", 24),
        ("DE", 22),
        ("DK", 18),
        ("DO", 28),
        ("EE", 20),
        ("EG", 29),
        ("ES", 24),
        ("FI", 18),
        ("FO", 18),
        ("FR", 27),
        ("GB", 22),
        ("GE", 22),
        ("GI", 23),
        ("GL", 18),
        ("GR", 27),
        ("GT", 28),
        ("HR", 21),
        ("HU", 28),
        ("IE", 22),
        ("IL", 23),
        ("IQ", 23),
        ("IS", 26),
        ("IT", 27),
        ("JO", 30),
        ("KW", 30),
        ("KZ", 20),
        ("LB", 28),
        ("LC", 32),
        ("LI", 21),
        ("LT", 20),
        ("LU", 20),
        ("LV", 21),
        ("MC", 27),
        ("MD", 24),
        ("ME", 22),
        ("MK", 19),
        ("MR", 27),
        ("MT", 31),
        ("MU", 30),
        ("NL", 18),
        ("NO", 15),
        ("PK", 24),
        ("PL", 28),
        ("PS", 29),
        ("PT", 25),
        ("QA", 29),
        ("RO", 24),
        ("RS", 22),
        ("SA", 24),
        ("SC", 31),
        ("SE", 24),
        ("SI", 19),
        ("SK", 24),
        ("SM", 27),
        ("ST", 25),
        ("SV", 28),
        ("TL", 23),
        ("TN", 24),
        ("TR", 26),
        ("UA", 29),
        ("VA", 22),
        ("VG", 24),
        ("XK", 20),
    ];
    L.iter().find(|(c, _)| *c == country).map(|x| x.1)
}

/// The remainder mod 97 of an IBAN-style string (letters count as 10–35).
pub(crate) fn mod97(s: &str) -> u32 {
    let mut r: u32 = 0;
    for c in s.bytes() {
        let x = if c.is_ascii_digit() {
            (c - b'0') as u32
        } else {
            (c.to_ascii_uppercase() - b'A') as u32 + 10
        };
        r = if x >= 10 {
            (r * 100 + x) % 97
        } else {
            (r * 10 + x) % 97
        };
    }
    r
}

/// An IBAN: a known country, its length, and mod-97 = 1 (spaces allowed).
pub fn iban(v: &str) -> bool {
    let s: String = v
        .chars()
        .filter(|c| *c != ' ')
        .collect::<String>()
        .to_ascii_uppercase();
    if s.len() < 15 || !s.is_char_boundary(2) || !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return false;
    }
    if iban_length(&s[..2]) != Some(s.len()) || !s[2..4].bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    mod97(&format!("{}{}", &s[4..], &s[..4])) == 1
}

/// A MAC address (`:` or `-` separated, or Cisco dotted).
pub fn mac(v: &str) -> bool {
    let t = v.trim();
    let parts: Vec<&str> = t.split([':', '-']).collect();
    (parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit())))
        || (t.len() == 14
            && t.split('.').count() == 3
            && t.split('.')
                .all(|p| p.len() == 4 && p.bytes().all(|b| b.is_ascii_hexdigit())))
}

fn base58check(s: &str) -> bool {
    const ALPHA: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut bytes: Vec<u8> = vec![0; 25];
    for c in s.bytes() {
        let Some(mut carry) = ALPHA.iter().position(|a| *a == c).map(|p| p as u32) else {
            return false;
        };
        for b in bytes.iter_mut().rev() {
            carry += 58 * (*b as u32);
            *b = (carry & 0xff) as u8;
            carry >>= 8;
        }
        if carry != 0 {
            return false;
        }
    }
    let (payload, check) = bytes.split_at(21);
    let h = Sha256::digest(Sha256::digest(payload));
    &h[..4] == check
}

/// A Bitcoin (Base58Check or bech32 `bc1`) or Ethereum (`0x` + 40 hex) address.
pub fn crypto(v: &str) -> bool {
    let t = v.trim();
    if let Some(h) = t.strip_prefix("0x") {
        return h.len() == 40 && h.bytes().all(|b| b.is_ascii_hexdigit());
    }
    if let Some(rest) = t.strip_prefix("bc1") {
        return (11..=71).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b"qpzry9x8gf2tvdw0s3jn54khce6mua7l".contains(&b));
    }
    (t.starts_with('1') || t.starts_with('3')) && (26..=35).contains(&t.len()) && base58check(t)
}

/// A phone number: digits with the usual separators, an optional `+` country
/// code, `(0)` trunk and `x`/`ext` extension; 7–15 digits. `strict` also
/// asks for formatting (a separator or `+`), so bare digit strings (ids,
/// reference numbers) are not phones unless the header says so.
pub fn phone(v: &str, strict: bool) -> bool {
    let t = v.trim();
    let lower = t.to_ascii_lowercase();
    let main = lower
        .split(" ext")
        .next()
        .unwrap_or("")
        .split('x')
        .next()
        .unwrap_or("")
        .trim_end_matches(['.', ' ']);
    if main.is_empty()
        || !main
            .bytes()
            .all(|b| b.is_ascii_digit() || b" +-.()/".contains(&b))
    {
        return false;
    }
    if main.matches('+').count() > 1 || (main.contains('+') && !main.starts_with('+')) {
        return false;
    }
    let n = main.bytes().filter(u8::is_ascii_digit).count();
    if !(7..=15).contains(&n) {
        return false;
    }
    if main.bytes().filter(|b| *b == b'(').count() != main.bytes().filter(|b| *b == b')').count() {
        return false;
    }
    // One point and nothing else between the digits is a decimal number (an
    // amount: `205189.89`), not a phone's formatting.
    let decimal = main.bytes().filter(|b| *b == b'.').count() == 1
        && main.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let formatted =
        (main.starts_with('+') || main.bytes().any(|b| b" -.()/".contains(&b))) && !decimal;
    !strict || formatted
}

/// Whether a phone number is valid per the numbering plans of libphonenumber's
/// metadata (the `phonenumber` crate): international numbers by their country code,
/// national ones as `default_region` (e.g. `US`).
pub fn phone_valid(v: &str, default_region: phonenumber::country::Id) -> bool {
    let t = v.trim();
    let region = if t.starts_with('+') || t.starts_with("00") {
        None
    } else {
        Some(default_region)
    };
    phonenumber::parse(region, t).is_ok_and(|n| phonenumber::is_valid(&n))
}

/// US state and territory codes (for addresses).
const STATES: &str = "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY AS GU MP PR VI UM AA AE AP";

/// USPS Publication 28, appendix C1: street suffixes and their abbreviations
/// (public domain), with common suffixes of other languages' street names.
const SUFFIXES: &str = "alley aly allee annex anx arcade arc avenue ave av bayou byu beach bch bend bnd bluff blf bluffs blfs bottom btm boulevard blvd branch br bridge brg brook brk brooks brks burg bg burgs bgs bypass byp camp cp canyon cyn cape cpe causeway cswy center ctr centers ctrs circle cir circles cirs cliff clf cliffs clfs club clb common cmn commons cmns corner cor corners cors course crse court ct courts cts cove cv coves cvs creek crk crescent cres crest crst crossing xing crossroad xrd crossroads xrds curve curv dale dl dam dm divide dv drive dr drives drs estate est estates ests expressway expy extension ext extensions exts fall falls fls ferry fry field fld fields flds flat flt flats flts ford frd fords frds forest frst forge frg forges frgs fork frk forks frks fort ft freeway fwy garden gdn gardens gdns gateway gtwy glen gln glens glns green grn greens grns grove grv groves grvs harbor hbr harbors hbrs haven hvn heights hts highway hwy hill hl hills hls hollow holw inlet inlt island is islands iss isle isles junction jct junctions jcts key ky keys kys knoll knl knolls knls lake lk lakes lks land landing lndg lane ln light lgt lights lgts loaf lf lock lck locks lcks lodge ldg loop mall manor mnr manors mnrs meadow mdw meadows mdws mews mill ml mills mls mission msn motorway mtwy mount mt mountain mtn mountains mtns neck nck orchard orch oval overpass opas park prk parks parkway pkwy parkways pass passage psge path pike pine pne pines pnes place pl plain pln plains plns plaza plz point pt points pts port prt ports prts prairie pr radial radl ramp ranch rnch rapid rpd rapids rpds rest rst ridge rdg ridges rdgs river riv road rd roads rds route rte row rue run shoal shl shoals shls shore shr shores shrs skyway skwy spring spg springs spgs spur spurs square sq squares sqs station sta stravenue stra stream strm street st streets sts summit smt terrace ter throughway trwy trace trce track trak trafficway trfy trail trl trailer trlr tunnel tunl turnpike tpke underpass upas union un unions uns valley vly valleys vlys via viaduct vdct view vw views vws village vlg villages vlgs ville vl vista vis walk walks wall way wy ways well wl wells wls strasse straße str weg allee gasse platz ring damm ufer chaussee rue avenue boulevard chemin impasse place quai route calle avenida plaza paseo camino via viale piazza corso largo vicolo straat laan weg plein gracht rua";

pub(crate) fn vocab(
    cell: &'static OnceLock<HashSet<&'static str>>,
    text: &'static str,
) -> &'static HashSet<&'static str> {
    cell.get_or_init(|| text.split_whitespace().collect())
}

/// Street suffixes (USPS and other languages'), lower case.
pub(crate) fn suffixes() -> &'static HashSet<&'static str> {
    static S: OnceLock<HashSet<&'static str>> = OnceLock::new();
    vocab(&S, SUFFIXES)
}

fn lines(
    cell: &'static OnceLock<HashSet<&'static str>>,
    text: &'static str,
) -> &'static HashSet<&'static str> {
    cell.get_or_init(|| {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .collect()
    })
}

/// First names (US Census 1990, public domain).
pub fn first_names() -> &'static HashSet<&'static str> {
    static S: OnceLock<HashSet<&'static str>> = OnceLock::new();
    lines(&S, include_str!("../data/first_names.txt"))
}

/// Surnames (US Census 1990, public domain).
pub fn last_names() -> &'static HashSet<&'static str> {
    static S: OnceLock<HashSet<&'static str>> = OnceLock::new();
    lines(&S, include_str!("../data/last_names.txt"))
}

const TITLES: &str = "mr mrs ms miss mx dr prof sir madam herr frau dott dott.ssa sig sig.ra mme mlle m sr sra srta don doña jr sr ii iii iv phd md dds dvm esq";

fn is_title(w: &str) -> bool {
    static S: OnceLock<HashSet<&'static str>> = OnceLock::new();
    let l = w.trim_end_matches('.').to_lowercase();
    vocab(&S, TITLES).contains(l.as_str())
}

/// The shape of a person's name: 2–5 capitalised words of letters, hyphens,
/// apostrophes and dots (titles and particles like `van`, `de` allowed).
pub fn name_shape(v: &str) -> bool {
    let words: Vec<&str> = v.split_whitespace().collect();
    if !(2..=6).contains(&words.len()) {
        return false;
    }
    let mut capitalised = 0;
    for w in &words {
        if !w
            .chars()
            .all(|c| c.is_alphabetic() || matches!(c, '-' | '\'' | '.' | '’' | ','))
        {
            return false;
        }
        if w.chars().next().is_some_and(char::is_uppercase) {
            capitalised += 1;
        } else if !matches!(
            *w,
            "van"
                | "von"
                | "de"
                | "der"
                | "den"
                | "del"
                | "della"
                | "di"
                | "da"
                | "du"
                | "le"
                | "la"
                | "y"
                | "dos"
                | "das"
                | "do"
                | "zu"
                | "ten"
                | "ter"
                | "bin"
                | "al"
        ) {
            return false;
        }
    }
    capitalised >= 2
}

/// How much of a name the vocabulary knows: a first name first, or a surname last.
pub fn name_known(v: &str) -> bool {
    let words: Vec<String> = v
        .split_whitespace()
        .filter(|w| !is_title(w))
        .map(|w| w.trim_matches(|c: char| !c.is_alphabetic()).to_lowercase())
        .collect();
    let (Some(first), Some(last)) = (words.first(), words.last()) else {
        return false;
    };
    first_names().contains(first.as_str()) || last_names().contains(last.as_str())
}

/// A person's name: the shape, and a first name or surname the vocabulary knows.
pub fn person(v: &str) -> bool {
    name_shape(v) && name_known(v)
}

/// A street address: a house number and a street with a known suffix (any
/// order, as in `12 Main St` or `Hauptstraße 5`), or a US military address
/// (`PSC 1234, Box 5678, APO AE 12345`, `USNS Name, FPO AA 12345`).
pub fn street_address(v: &str) -> bool {
    let t = v.trim();
    let upper = t.to_ascii_uppercase();
    for m in [" APO ", " FPO ", " DPO "] {
        if let Some(i) = upper.find(m) {
            let tail = &upper[i + m.len()..];
            let mut it = tail.split_whitespace();
            if it.next().is_some_and(|s| matches!(s, "AA" | "AE" | "AP"))
                && it
                    .next()
                    .is_some_and(|z| z.len() == 5 && z.bytes().all(|b| b.is_ascii_digit()))
            {
                return true;
            }
        }
    }
    let mut parts = t.split(',');
    let first = parts.next().unwrap_or("");
    let words: Vec<&str> = first.split_whitespace().collect();
    if words.is_empty() {
        return false;
    }
    // `12`, `12a`, `77-81`, `2/5`, `14b-16`.
    let number = |w: &str| {
        let w = w.trim_end_matches(',');
        let mut ok = false;
        for (i, piece) in w.split(['-', '/']).enumerate() {
            let d = piece.bytes().take_while(u8::is_ascii_digit).count();
            if d == 0
                || d > 6
                || piece.len() - d > 2
                || !piece[d..].bytes().all(|b| b.is_ascii_alphabetic())
                || i > 1
            {
                return false;
            }
            ok = true;
        }
        ok
    };
    let street_word = |w: &str| {
        let l = w.trim_end_matches(',').to_lowercase();
        let l = l.trim_end_matches('.');
        suffixes().contains(l)
            || [
                "straße", "strasse", "str", "weg", "gasse", "platz", "ring", "allee", "damm",
                "ufer", "steig", "pfad", "markt", "chaussee", "straat", "laan", "plein", "gracht",
                "singel", "kade", "vej", "gatan", "vägen", "gata",
            ]
            .iter()
            .any(|s| l.ends_with(s) && l.chars().count() > s.chars().count() + 2)
    };
    let has_street = |ws: &[&str]| ws.iter().any(|w| street_word(w));
    if words.len() >= 2 {
        if number(words[0]) && has_street(&words[1..]) {
            return true;
        }
        if number(words[words.len() - 1]) && has_street(&words[..words.len() - 1]) {
            return true;
        }
    }
    // `rue Lopes, 36517 Dupuis`: a street word first, then a part with a postcode.
    let postcode = parts.any(|p| {
        p.split_whitespace()
            .next()
            .is_some_and(|z| (4..=5).contains(&z.len()) && z.bytes().all(|b| b.is_ascii_digit()))
    });
    postcode && (street_word(words[0]) || street_word(words[words.len() - 1]))
}

/// Whether text ends like a US address's city line (`City, ST 12345`).
pub fn us_city_line(v: &str) -> bool {
    let Some((_, tail)) = v.rsplit_once(',') else {
        return false;
    };
    let mut it = tail.split_whitespace();
    let st = it.next().unwrap_or("");
    let zip = it.next().unwrap_or("");
    STATES.split_whitespace().any(|s| s == st)
        && (zip.len() == 5 || zip.len() == 10)
        && zip.bytes().all(|b| b.is_ascii_digit() || b == b'-')
}

/// A date in a common format.
pub fn date(v: &str) -> bool {
    let t = v.trim();
    tamis_core::types::parse_date(t).is_some() || tamis_core::types::parse_datetime(t).is_some()
}

/// UK National Insurance number: two letters (not D, F, I, Q, U, V; the second not O;
/// not the prefixes BG, GB, NK, KN, TN, NT, ZZ), six digits, a suffix A–D.
pub fn uk_nino(v: &str) -> bool {
    let s: String = v
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    let b = s.as_bytes();
    if b.len() != 9 {
        return false;
    }
    let bad1 = b"DFIQUV";
    let ok_letters = b[0].is_ascii_uppercase()
        && b[1].is_ascii_uppercase()
        && !bad1.contains(&b[0])
        && !bad1.contains(&b[1])
        && b[1] != b'O';
    ok_letters
        && !["BG", "GB", "NK", "KN", "TN", "NT", "ZZ"].contains(&&s[..2])
        && b[2..8].iter().all(u8::is_ascii_digit)
        && (b'A'..=b'D').contains(&b[8])
}

/// Spanish DNI (8 digits + check letter) or NIE (X/Y/Z + 7 digits + check letter).
pub fn es_dni(v: &str) -> bool {
    const L: &[u8] = b"TRWAGMYFPDXBNJZSQVHLCKE";
    let s = v.trim().replace('-', "").to_ascii_uppercase();
    let b = s.as_bytes();
    if b.len() != 9 || !b[8].is_ascii_uppercase() {
        return false;
    }
    let prefix = match b[0] {
        b'X' => Some('0'),
        b'Y' => Some('1'),
        b'Z' => Some('2'),
        c if c.is_ascii_digit() => None,
        _ => return false,
    };
    let digits: String = match prefix {
        Some(p) => format!("{p}{}", &s[1..8]),
        None => s[..8].to_string(),
    };
    digits
        .parse::<u32>()
        .is_ok_and(|n| L[(n % 23) as usize] == b[8])
}

/// Italian codice fiscale: the 16-character pattern and its check letter.
pub fn it_codice_fiscale(v: &str) -> bool {
    let s = v.trim().to_ascii_uppercase();
    let b = s.as_bytes();
    if b.len() != 16 || !b.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    let letters = [0, 1, 2, 3, 4, 5, 8, 11, 15];
    if !letters.iter().all(|&i| b[i].is_ascii_uppercase()) || !b"ABCDEHLMPRST".contains(&b[8]) {
        return false;
    }
    const ODD: [u32; 26] = [
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24,
        23,
    ];
    let val = |c: u8, odd: bool| -> u32 {
        let i = if c.is_ascii_digit() {
            (c - b'0') as usize
        } else {
            (c - b'A') as usize
        };
        if odd { ODD[i] } else { i as u32 }
    };
    let sum: u32 = b[..15]
        .iter()
        .enumerate()
        .map(|(i, &c)| val(c, i % 2 == 0))
        .sum();
    (b'A' + (sum % 26) as u8) == b[15]
}

/// French NIR (INSEE number): 13 digits (2A/2B for Corsica) and a key 97 − (n mod 97).
pub fn fr_nir(v: &str) -> bool {
    let s: String = v
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    if s.len() != 15 || !matches!(s.as_bytes()[0], b'1' | b'2') {
        return false;
    }
    let body = s[..13].replace("2A", "19").replace("2B", "18");
    let (Ok(n), Ok(key)) = (body.parse::<u64>(), s[13..].parse::<u64>()) else {
        return false;
    };
    97 - n % 97 == key
}

/// German tax id (Steuer-ID): 11 digits, first not 0, ISO 7064 MOD 11,10 check digit.
pub fn de_tax_id(v: &str) -> bool {
    let s: String = v.chars().filter(|c| !c.is_whitespace()).collect();
    if s.len() != 11 || !s.bytes().all(|b| b.is_ascii_digit()) || s.starts_with('0') {
        return false;
    }
    let mut p = 10;
    for c in s[..10].bytes() {
        let mut x = ((c - b'0') as u32 + p) % 10;
        if x == 0 {
            x = 10;
        }
        p = (2 * x) % 11;
    }
    let check = (11 - p) % 10;
    check == (s.as_bytes()[10] - b'0') as u32
}

/// Dutch BSN: 9 digits passing the 11-test.
pub fn nl_bsn(v: &str) -> bool {
    let s = v.trim();
    if s.len() != 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum: i32 = s
        .bytes()
        .enumerate()
        .map(|(i, c)| {
            let d = (c - b'0') as i32;
            if i == 8 { -d } else { d * (9 - i as i32) }
        })
        .sum();
    sum % 11 == 0 && sum != 0
}

/// Brazilian CPF: 11 digits (dots and dash allowed) with two mod-11 check digits.
pub fn br_cpf(v: &str) -> bool {
    let d: Vec<u32> = v
        .chars()
        .filter(char::is_ascii_digit)
        .filter_map(|c| c.to_digit(10))
        .collect();
    if d.len() != 11
        || d.iter().all(|x| *x == d[0])
        || v.chars()
            .any(|c| !(c.is_ascii_digit() || c == '.' || c == '-'))
    {
        return false;
    }
    let check = |n: usize| {
        let s: u32 = d[..n]
            .iter()
            .enumerate()
            .map(|(i, x)| x * (n as u32 + 1 - i as u32))
            .sum();
        let r = (s * 10) % 11;
        if r == 10 { 0 } else { r }
    };
    check(9) == d[9] && check(10) == d[10]
}

/// A national identity or tax number of a major country, by its format and checksum.
/// `distinctive` keeps only formats a random identifier is unlikely to match (UK
/// NINO, Spanish DNI/NIE, Italian codice fiscale, French NIR, Brazilian CPF with
/// punctuation); pure digit strings (German tax id, Dutch BSN) need a header.
pub fn national_id(v: &str, distinctive: bool) -> bool {
    let t = v.trim();
    uk_nino(t)
        || es_dni(t)
        || it_codice_fiscale(t)
        || fr_nir(t)
        || (br_cpf(t) && (t.contains('.') || !distinctive))
        || (!distinctive && (de_tax_id(t) || nl_bsn(t)))
}

/// A passport number: one or two letters and 6–8 digits, or 9 digits (most countries' formats).
pub fn passport(v: &str) -> bool {
    let t = v.trim().to_ascii_uppercase();
    let letters = t.bytes().take_while(u8::is_ascii_uppercase).count();
    let rest = &t[letters..];
    let digits = rest.bytes().all(|b| b.is_ascii_digit());
    (letters <= 2 && digits && (6..=9).contains(&rest.len()) && t.len() <= 9)
        || (letters == 0 && t.len() == 9 && digits)
}

/// The type a cell shows by itself, without column context, most specific first.
pub fn cell_type(v: &str) -> Option<PiiType> {
    let t = v.trim();
    if t.is_empty() {
        return None;
    }
    let b = t.as_bytes()[0];
    if t.contains('@') && email(t) {
        return Some(PiiType::EmailAddress);
    }
    if url(t) {
        return Some(PiiType::Url);
    }
    if (t.contains('.') || t.contains(':')) && ip(t) {
        return Some(PiiType::IpAddress);
    }
    if b.is_ascii_alphabetic() && t.len() >= 15 && iban(t) {
        return Some(PiiType::IbanCode);
    }
    if b.is_ascii_digit() {
        if card(t) {
            return Some(PiiType::CreditCard);
        }
        if ssn(t, false) {
            return Some(PiiType::UsSsn);
        }
    }
    if mac(t) {
        return Some(PiiType::MacAddress);
    }
    if crypto(t) {
        return Some(PiiType::CryptoWallet);
    }
    if national_id(t, true) {
        return Some(PiiType::NationalId);
    }
    if date(t) {
        return Some(PiiType::DateOfBirth);
    }
    if street_address(t) {
        return Some(PiiType::StreetAddress);
    }
    if phone(t, true) {
        return Some(PiiType::PhoneNumber);
    }
    if person(t) {
        return Some(PiiType::Person);
    }
    None
}

/// Whether a cell is a plausible value of `t` once the column is known to be `t`
/// (looser than [`cell_type`]: the column's header and statistics vouch for it).
pub fn fits(t: PiiType, v: &str) -> bool {
    let v = v.trim();
    match t {
        PiiType::Person => {
            name_shape(v)
                || (v.split_whitespace().count() >= 1
                    && v.chars().all(|c| c.is_alphabetic() || " -'.’".contains(c))
                    && v.chars().any(char::is_uppercase))
        }
        PiiType::EmailAddress => email(v),
        PiiType::PhoneNumber => phone(v, false),
        PiiType::CreditCard => card(v),
        PiiType::UsSsn => ssn(v, true),
        PiiType::IpAddress => ip(v),
        PiiType::IbanCode => iban(v),
        // In an address column: a house number and a street, in either order.
        PiiType::StreetAddress => {
            street_address(v)
                || (v.contains(' ')
                    && v.bytes().any(|b| b.is_ascii_digit())
                    && v.split([' ', ','])
                        .any(|w| w.len() > 2 && w.chars().all(char::is_alphabetic)))
        }
        PiiType::DateOfBirth => date(v),
        PiiType::Url => url(v) || (v.contains('.') && !v.contains(' ') && v.contains('/')),
        PiiType::MacAddress => mac(v),
        PiiType::CryptoWallet => crypto(v),
        PiiType::Passport | PiiType::NationalId => {
            v.len() >= 5
                && v.len() <= 20
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b' ')
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_of_every_brand_and_near_misses() {
        for c in [
            "4111111111111111",
            "4222222222222",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "5555555555554444",
            "2223003122003222",
            "378282246310005",
            "6011111111111117",
            "3530111333300000",
            "213100000000001",
            "180000000000002",
            "30569309025904",
            "6759649826438453",
            "6200000000000005",
            "4000000000000000006",
            "3523425733916895",
            "060428795482",
        ] {
            assert!(card(c), "{c}");
        }
        for c in [
            "4111111111111112",
            "1234567812345678",
            "411111111111",
            "4111 1111 1111 111x",
            "12345678903",
        ] {
            assert!(!card(c), "{c}");
        }
    }

    #[test]
    fn ssns_with_and_without_dashes() {
        assert!(ssn("123-45-6789", false));
        assert!(ssn("123456789", true));
        assert!(!ssn("123456789", false));
        for bad in [
            "000-12-3456",
            "666-12-3456",
            "912-12-3456",
            "123-00-4567",
            "123-45-0000",
            "123-456-789",
        ] {
            assert!(!ssn(bad, true), "{bad}");
        }
    }

    #[test]
    fn ibans_check_country_length_and_mod97() {
        assert!(iban("GB82 WEST 1234 5698 7654 32"));
        assert!(iban("DE89370400440532013000"));
        assert!(iban("FR1420041010050500013M02606"));
        assert!(!iban("GB82 WEST 1234 5698 7654 33"));
        assert!(!iban("DE8937040044053201300"));
        assert!(!iban("XX89370400440532013000"));
    }

    #[test]
    fn addresses_ips_emails_urls_phones_macs_wallets() {
        assert!(
            ip("192.168.0.1") && ip("2001:db8::1") && ip("2001:0db8:0000:0000:0000:ff00:0042:8329")
        );
        assert!(!ip("999.1.1.1") && !ip("1.2.3"));
        assert!(email("a.b+c@example.co.uk") && !email("a@b") && !email("a at b.com"));
        assert!(
            url("https://www.example.com/a?b=1")
                && url("http://smith.info/")
                && !url("example")
                && url("WWW.Example.org")
                && !url("WWW.")
        );
        for p in [
            "(555) 123-4567",
            "+1-555-123-4567",
            "555.123.4567x123",
            "+44(0)20 7946 0958",
            "030 12345678",
            "+81 3-1234-5678",
            "(05678) 123456",
        ] {
            assert!(phone(p, true), "{p}");
        }
        assert!(!phone("1234567890", true) && phone("1234567890", false));
        // Amounts are not phones unless the header says so.
        assert!(!phone("205189.89", true) && !phone("1234567.5", true));
        assert!(phone("555.1234567", false) && phone("555.123.4567", true));
        assert!(!phone("ORD-2023-000123", false) && !phone("12", false));
        assert!(mac("00:1A:2B:3C:4D:5E") && mac("001a.2b3c.4d5e") && !mac("00:1A:2B:3C:4D"));
        assert!(
            crypto("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa")
                && !crypto("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb")
        );
        assert!(crypto("0x52908400098527886E0F7030069857D2E4169EE7"));
        for a in [
            "123 Main Street, Springfield, IL 62704",
            "4 Elm Ave Apt. 5, Boston, MA 02118",
            "PSC 1234, Box 5678, APO AE 12345",
            "USNS Smith, FPO AA 12345",
            "Hauptstraße 5, 10115 Berlin",
            "Krausestraße 14-95, 68660 Erbisdorf",
            "Dehmelring 2/5, 64982 Bremen",
            "boulevard de Brunet, 72515 Lopez",
        ] {
            assert!(street_address(a), "{a}");
        }
        assert!(!street_address("Ergonomic Steel Chair") && !street_address("12 apples"));
    }

    #[test]
    fn phones_validate_against_numbering_plans() {
        use phonenumber::country::Id;
        assert!(phone_valid("+1 650-253-0000", Id::US));
        assert!(phone_valid("(650) 253-0000", Id::US));
        assert!(phone_valid("+44 20 7946 0958", Id::US));
        assert!(phone_valid("+49 30 901820", Id::US));
        assert!(
            !phone_valid("+1 123 456 7890", Id::US),
            "area code 123 does not exist"
        );
        assert!(!phone_valid("12", Id::US));
    }

    #[test]
    fn national_ids_check_their_checksums() {
        assert!(uk_nino("AB 12 34 56 C") && !uk_nino("DA123456C") && !uk_nino("AB123456E"));
        assert!(es_dni("12345678Z") && !es_dni("12345678A") && es_dni("X1234567L"));
        assert!(it_codice_fiscale("RSSMRA85T10A562S") && !it_codice_fiscale("RSSMRA85T10A562T"));
        assert!(fr_nir("1 84 12 76 451 089 46") && !fr_nir("1 84 12 76 451 089 47"));
        assert!(de_tax_id("86095742719") && !de_tax_id("86095742718"));
        assert!(nl_bsn("111222333") && !nl_bsn("111222334"));
        assert!(br_cpf("529.982.247-25") && !br_cpf("529.982.247-26") && !br_cpf("111.111.111-11"));
        assert!(
            national_id("529.982.247-25", true)
                && !national_id("86095742719", true)
                && national_id("86095742719", false)
        );
        assert!(passport("X1234567") && passport("123456789") && !passport("ORD-2023"));
        assert_eq!(cell_type("RSSMRA85T10A562S"), Some(PiiType::NationalId));
        assert_eq!(cell_type("ABC-1234-XY"), None);
    }

    #[test]
    fn names_need_shape_and_vocabulary() {
        assert!(person("John Smith") && person("Dr. Mary Johnson") && person("Anna van der Berg"));
        assert!(
            !person("Ergonomic Steel Chair") && !person("john smith") && !person("ACME-123 Ltd")
        );
        assert_eq!(cell_type("Ergonomic Steel Chair"), None);
        assert_eq!(cell_type("ORD-2023-000123"), None);
        assert_eq!(cell_type("550e8400-e29b-41d4-a716-446655440000"), None);
    }
}
