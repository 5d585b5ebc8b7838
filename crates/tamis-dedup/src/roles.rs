//! Which role each column plays, from its header and a sample of its values.

use foldhash::HashSet;
use serde::Serialize;

use crate::settings::Role;

/// A column's inferred role and why.
#[derive(Debug, Clone, Serialize)]
pub struct RoleGuess {
    /// The column.
    pub column: String,
    /// The role.
    pub role: Role,
    /// Why, in one sentence.
    pub reason: String,
}

/// Header words (after splitting `snake_case`, `camelCase`, spaces) → role.
/// Several languages; checked in order, first hit wins, so the more specific
/// phrases come first.
const HEADER_ROLES: &[(&[&str], Role)] = &[
    (
        &[
            "dob",
            "dateofbirth",
            "birthdate",
            "birthday",
            "geburtsdatum",
            "datenaissance",
            "naissance",
            "fechanacimiento",
            "nacimiento",
            "datanascita",
            "geboortedatum",
            "birth",
        ],
        Role::DateOfBirth,
    ),
    (
        &[
            "streetnumber",
            "housenumber",
            "hausnummer",
            "housenum",
            "streetno",
            "houseno",
            "huisnummer",
        ],
        Role::HouseNumber,
    ),
    (
        &[
            "ssn",
            "socsec",
            "socsecid",
            "social",
            "nino",
            "passport",
            "national",
            "nationalid",
            "taxid",
            "tin",
            "nir",
            "dni",
            "nie",
            "cpf",
            "bsn",
            "steuerid",
            "codicefiscale",
            "license",
            "licence",
            "medicare",
        ],
        Role::PersonId,
    ),
    (
        &["email", "mail", "courriel", "correo", "emailaddress"],
        Role::Email,
    ),
    (
        &[
            "phone",
            "tel",
            "telephone",
            "telefon",
            "telefono",
            "mobile",
            "cell",
            "fax",
            "handy",
            "portable",
        ],
        Role::Phone,
    ),
    (
        &[
            "postcode",
            "zip",
            "zipcode",
            "postal",
            "postalcode",
            "plz",
            "postleitzahl",
            "cp",
            "codepostal",
        ],
        Role::Postcode,
    ),
    (
        &[
            "givenname",
            "firstname",
            "fname",
            "forename",
            "vorname",
            "prenom",
            "prénom",
            "nombre",
            "voornaam",
        ],
        Role::FirstName,
    ),
    (
        &[
            "surname",
            "lastname",
            "lname",
            "familyname",
            "nachname",
            "apellido",
            "apellidos",
            "cognome",
            "achternaam",
        ],
        Role::LastName,
    ),
    (
        &[
            "suburb",
            "city",
            "town",
            "locality",
            "ort",
            "stadt",
            "ville",
            "ciudad",
            "citta",
            "municipality",
            "village",
        ],
        Role::City,
    ),
    (
        &["state", "province", "region", "county", "bundesland"],
        Role::State,
    ),
    (
        &["country", "land", "pays", "pais", "nation"],
        Role::Country,
    ),
    (
        &[
            "address",
            "addr",
            "street",
            "strasse",
            "straße",
            "adresse",
            "rue",
            "calle",
            "direccion",
            "indirizzo",
        ],
        Role::Address,
    ),
    (&["name", "fullname", "nom", "person"], Role::FullName),
    (
        &["date", "datum", "created", "updated", "signup", "joined"],
        Role::Date,
    ),
    (
        &[
            "age", "income", "amount", "price", "score", "salary", "balance", "total", "qty",
            "quantity", "weight", "height",
        ],
        Role::Number,
    ),
];

/// Header words that make a column an identifier of the record itself.
const KEY_WORDS: &[&str] = &["id", "key", "uuid", "guid", "rec", "recid", "pk", "row"];

fn is_email(v: &str) -> bool {
    match v.split_once('@') {
        Some((u, d)) => !u.is_empty() && d.contains('.') && !v.contains(' '),
        None => false,
    }
}

fn is_phone_like(v: &str) -> bool {
    let digits = v.chars().filter(char::is_ascii_digit).count();
    (7..=15).contains(&digits)
        && v.chars()
            .all(|c| c.is_ascii_digit() || " +-().x".contains(c))
        && v.chars().any(|c| " +-().".contains(c))
}

/// Guesses a column's role from its name and non-empty sample values.
pub fn guess(name: &str, sample: &[String]) -> RoleGuess {
    let words = tamis_privacy::header_words(name);
    let n = sample.len().max(1) as f64;
    let distinct: HashSet<&str> = sample.iter().map(String::as_str).collect();
    let distinct_share = distinct.len() as f64 / n;
    let mean_len = sample.iter().map(|v| v.chars().count()).sum::<usize>() as f64 / n;
    let share = |f: &dyn Fn(&str) -> bool| sample.iter().filter(|v| f(v)).count() as f64 / n;
    let mk = |role, reason: String| RoleGuess {
        column: name.to_string(),
        role,
        reason,
    };
    if sample.is_empty() {
        return mk(Role::FreeText, "the sample has no values".into());
    }
    for (vocab, role) in HEADER_ROLES {
        if let Some(w) = words.iter().find(|w| vocab.contains(&w.as_str())) {
            // A header that says "id" on top of a role word (customer_id,
            // person_key) names the record, unless the role is itself an id.
            let keyish = words.iter().any(|w| KEY_WORDS.contains(&w.as_str()));
            if keyish && *role != Role::PersonId && distinct_share > 0.9 {
                return mk(
                    Role::RecordKey,
                    format!(
                        "the header `{name}` names an identifier and {:.0}% of sampled values are distinct",
                        distinct_share * 100.0
                    ),
                );
            }
            if *role == Role::Date && share(&|v| crate::compare::parse_day(v).is_some()) < 0.5 {
                continue;
            }
            return mk(*role, format!("the header word `{w}`"));
        }
    }
    if words.iter().any(|w| KEY_WORDS.contains(&w.as_str())) && distinct_share > 0.9 {
        return mk(
            Role::RecordKey,
            format!(
                "the header `{name}` names an identifier and {:.0}% of sampled values are distinct",
                distinct_share * 100.0
            ),
        );
    }
    if share(&|v| is_email(v)) >= 0.8 {
        return mk(
            Role::Email,
            "80% or more of the values are e-mail addresses".into(),
        );
    }
    if share(&|v| crate::compare::parse_day(v).is_some()) >= 0.8 {
        return mk(Role::Date, "80% or more of the values are dates".into());
    }
    if share(&|v| is_phone_like(v)) >= 0.8 {
        return mk(
            Role::Phone,
            "80% or more of the values look like phone numbers".into(),
        );
    }
    if share(&|v| tamis_core::types::parse_float(v).is_some()) >= 0.95 {
        if distinct_share >= 0.999 && sample.len() >= 20 {
            return mk(
                Role::RecordKey,
                "every sampled value is a distinct number (a row key)".into(),
            );
        }
        return mk(Role::Number, "the values are numbers".into());
    }
    if mean_len > 60.0 {
        return mk(
            Role::FreeText,
            format!("long free text (mean {mean_len:.0} characters): not compared"),
        );
    }
    if distinct.len() <= 20 && sample.len() >= 100 {
        return mk(
            Role::Category,
            format!("{} distinct values in the sample", distinct.len()),
        );
    }
    mk(Role::Text, "short text".into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn febrl_and_customer_headers() {
        let ids = s(&["rec-1-org", "rec-2-org", "rec-3-dup-0"]);
        assert_eq!(guess("rec_id", &ids).role, Role::RecordKey);
        assert_eq!(guess("given_name", &s(&["john"])).role, Role::FirstName);
        assert_eq!(guess("surname", &s(&["smith"])).role, Role::LastName);
        assert_eq!(guess("street_number", &s(&["7"])).role, Role::HouseNumber);
        assert_eq!(
            guess("address_1", &s(&["wallaby place"])).role,
            Role::Address
        );
        assert_eq!(guess("suburb", &s(&["marsden"])).role, Role::City);
        assert_eq!(guess("postcode", &s(&["2119"])).role, Role::Postcode);
        assert_eq!(
            guess("date_of_birth", &s(&["19560409"])).role,
            Role::DateOfBirth
        );
        assert_eq!(
            guess("soc_sec_id", &s(&["1804974", "1804975"])).role,
            Role::PersonId
        );
        let cid = s(&["1", "2", "3", "4"]);
        assert_eq!(guess("customer_id", &cid).role, Role::RecordKey);
        assert_eq!(guess("signup_date", &s(&["2020-01-01"])).role, Role::Date);
        assert_eq!(
            guess("Geburtsdatum", &s(&["01.02.1990"])).role,
            Role::DateOfBirth
        );
        assert_eq!(guess("courriel", &s(&["a@b.fr"])).role, Role::Email);
    }

    #[test]
    fn values_decide_without_a_header_hint() {
        assert_eq!(guess("c1", &s(&["a@b.com", "c@d.org"])).role, Role::Email);
        assert_eq!(
            guess("c2", &s(&["(555) 123-4567", "555.123.4567"])).role,
            Role::Phone
        );
        let nums: Vec<String> = (0..50).map(|i| i.to_string()).collect();
        assert_eq!(guess("c3", &nums).role, Role::RecordKey);
        let cats: Vec<String> = (0..200)
            .map(|i| ["a", "b", "c"][i % 3].to_string())
            .collect();
        assert_eq!(guess("c4", &cats).role, Role::Category);
    }
}
