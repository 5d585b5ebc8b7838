#!/usr/bin/env python3
"""The kit's PII table (../shared/bench/pii/make_table.py) with a non-US Faker locale.

usage: pii_locale_table.py TABLE.csv TRUTH.csv --locale de_DE [--rows 20000] [--seed 20240607]

The same 19 columns, true types, row-major generation order, empty cells (about 2% of 17
columns; order_id and uuid never) and CSV writing as make_table.py, which this script runs
in place (imported from the kit, not copied) with these generators swapped for LOCALE's:

  full_name       80% LOCALE name(), 20% the other make_table.py name locales (en_US
                  taking LOCALE's place in that mix)
  email           LOCALE email() / free_email() / company_email(), 50 / 30 / 20%
  phone_us        LOCALE phone_number() (the column keeps its name: same 19 columns)
  iban            LOCALE iban() (DE / FR / ... only); 30% in groups of 4, as make_table.py
  street_address  LOCALE address() on one line

Everything else is make_table.py's: phone_intl (its 12-locale mix), credit_card (en_US),
ssn (en_US: US_SSN is a US type), ipv4, ipv6, website (en_US url()/uri()), date_of_birth
(its formats, English month names), and the 7 distractor columns. Where LOCALE has no
provider of its own Faker falls back to en_US; TRUTH.csv's generator column says which
locale each swapped generator really came from. Deterministic for a given --locale,
--seed, --rows and Faker version. Needs the kit's venv (Faker, pandas).
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
KIT = os.path.join(HERE, "..", "..", "shared", "bench", "pii")
sys.path.insert(0, os.path.normpath(KIT))
import make_table as mt  # noqa: E402  (the kit's generator, run in place)
from faker import Faker  # noqa: E402

LOCALE_SEED_OFFSET = 1000   # the locale's own Faker instance: seed + this (not the kit's seeds)


def provider_lang(fk, kind):
    """The locale Faker really uses for a provider kind (person, address, ...)."""
    for p in fk.providers:
        mod = type(p).__module__
        if mod.startswith(f"faker.providers.{kind}"):
            return getattr(p, "__lang__", None) or (mod.split(".")[3] if mod.count(".") >= 3 else "en_US")
    return "?"


def make_gen_class(locale):
    class LocaleGen(mt.Gen):
        def __init__(self, seed):
            super().__init__(seed)
            self.loc = Faker(locale)
            self.loc.seed_instance(seed + LOCALE_SEED_OFFSET)
            self.name_mix = [l for l in mt.NAME_LOCALES if l != locale] + ["en_US"]

        def full_name(self):
            if self.rng.random() < 0.8:
                return self.loc.name()
            other = self.rng.choice(self.name_mix)
            return (self.us if other == "en_US" else self.fk[other]).name()

        def email(self):
            r = self.rng.random()
            if r < 0.5:
                return self.loc.email()
            if r < 0.8:
                return self.loc.free_email()
            return self.loc.company_email()

        def phone_us(self):
            return self.loc.phone_number()

        def iban(self):
            v = self.loc.iban()
            if self.rng.random() < 0.3:
                v = " ".join(v[i:i + 4] for i in range(0, len(v), 4))
            return v

        def street_address(self):
            return self.loc.address().replace("\n", ", ")

    return LocaleGen


def columns(locale):
    """make_table.py's COLUMNS with the swapped generators' descriptions."""
    fk = Faker(locale)
    lang = {k: provider_lang(fk, k) for k in ("person", "internet", "phone_number", "bank", "address")}
    others = "/".join([l for l in mt.NAME_LOCALES if l != locale] + ["en_US"])
    desc = {
        "full_name": f"Faker name(): 80% {lang['person']}, 20% {others}",
        "email": f"Faker email()/free_email()/company_email() {lang['internet']}",
        "phone_us": f"Faker {lang['phone_number']} phone_number() (column name kept from make_table.py)",
        "iban": f"Faker {lang['bank']} iban(); 30% in groups of 4",
        "street_address": f"Faker {lang['address']} address(), newline -> ', '",
    }
    return [(n, m, t, desc.get(n, d), e) for n, m, t, d, e in mt.COLUMNS]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("table", help="output CSV of the table")
    ap.add_argument("truth", help="output CSV of the per-column truth")
    ap.add_argument("--locale", required=True, help="Faker locale, e.g. de_DE, fr_FR")
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=20240607)
    a = ap.parse_args()
    try:
        Faker(a.locale)
    except AttributeError:
        ap.error(f"Faker has no locale {a.locale!r}")
    # make_table.main() reads Gen and COLUMNS when it runs: point them at the locale's.
    mt.Gen = make_gen_class(a.locale)
    mt.COLUMNS = columns(a.locale)
    sys.argv = [mt.__file__, a.table, a.truth, "--rows", str(a.rows), "--seed", str(a.seed)]
    rc = mt.main()
    print(f"pii_locale_table.py: locale {a.locale} for full_name, email, phone_us, iban, street_address")
    return rc


if __name__ == "__main__":
    sys.exit(main())
