//! What a column's name says about its values. Names are split into lower-case words at
//! `_`, `-`, spaces, dots and camelCase humps (`dateOfBirth` → date, of, birth; `ZIPCode`
//! → zip, code; digits stay with the word before: `zip5`), and some checks also look at
//! the words run together (`birthdate`, `postalcode`). Hints only ever *add* findings that values alone cannot
//! justify (a bare 5-digit ZIP, a single-word name, a date of birth), except `version`,
//! which stops dotted quads being called IP addresses.

/// Flags derived from a column name by [`ColumnHint::from_name`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ColumnHint {
    /// Dates here are dates of birth: `dob`, `birth_date`, `date_of_birth`, `born_on`,
    /// `geburtsdatum`, `fecha_nacimiento`, `date_naissance`…
    pub birth: bool,
    /// Bare numbers here are postcodes: `zip`, `zipcode`, `postal_code`, `postcode`, `plz`,
    /// `pincode`, `cep`, `eircode`…
    pub postcode: bool,
    /// Short alphabetic values here are person names: a word `name` (or `surname`,
    /// `firstname`, `vorname`, `nombre`, `apellido`, `prenom`…) and no word naming a thing
    /// (`product_name`, `company_name`, `file_name`, `user_name`, `city_name`…).
    pub person_name: bool,
    /// Dotted quads here are versions, not IPv4: `version`, `ver`, `build`, `release`,
    /// `firmware`, `revision`…
    pub version: bool,
    /// The name says identifier: last word `id`, `uuid`, `guid`, `key`, `number`, `no`,
    /// `nr`, `num`, `ref`, `code`, `token`, or `…id` run together after a person word
    /// (`customerid`), or the column is `ssn`/`email`/`mrn`.
    pub identifier: bool,
    /// An identifier of a person, the usual privacy unit: `identifier` plus a person word
    /// (`customer`, `user`, `patient`, `member`, `account`, `employee`, `student`…), or
    /// `ssn`, `email`, `mrn`, `nhs_number`.
    pub person_identifier: bool,
}

const BIRTH_WORDS: &[&str] =
    &["dob", "bdate", "bday", "birthdate", "birthday", "geb", "gebdat", "gebdatum", "fnac", "dtnasc"];
const BIRTH_STEMS: &[&str] = &["birth", "born", "geburt", "nacimiento", "naissance", "nascita"];
const POSTCODE_WORDS: &[&str] =
    &["zip", "zipcode", "zip5", "postcode", "postal", "postalcode", "plz", "postleitzahl", "pincode", "cep", "eircode"];
const POSTCODE_STEMS: &[&str] = &["zipcode", "postcode", "postalcode", "postleitzahl", "pincode"];
#[rustfmt::skip]
const NAME_WORDS: &[&str] = &[
    "name", "names", "fullname", "firstname", "lastname", "surname", "surnames", "forename", "forenames", "givenname",
    "familyname", "middlename", "maidenname", "nachname", "vorname", "nombre", "apellido", "apellidos", "prenom",
    "cognome", "nome",
];
/// Words that make a `…name` column the name of a thing, not of a person.
#[rustfmt::skip]
const THING_WORDS: &[&str] = &[
    "product", "company", "file", "filename", "host", "hostname", "user", "username", "city", "street", "brand",
    "item", "business", "org", "organisation", "organization", "bank", "store", "shop", "merchant", "vendor",
    "supplier", "team", "category", "table", "column", "field", "event", "domain", "dataset", "model", "country",
    "state", "region", "branch", "project", "app", "device", "server", "service", "plan", "campaign", "sheet", "tag",
    "type", "class", "group", "dept", "department", "school", "hospital", "facility", "drug", "medication", "course",
    "job", "species", "place", "location", "site", "account", "screen", "nick", "display", "key", "index", "db",
    "schema", "feature", "metric", "test", "package", "module", "function", "method", "var", "variable", "channel",
    "program", "programme", "fund", "portfolio", "asset", "sku", "color", "colour", "size", "unit", "layer", "image",
    "document", "doc", "report", "queue", "topic", "bucket", "cluster", "zone", "employer", "firm",
];
const VERSION_WORDS: &[&str] =
    &["version", "ver", "vers", "build", "release", "firmware", "fw", "revision", "rev", "semver"];
const ID_WORDS: &[&str] =
    &["id", "ids", "uuid", "guid", "key", "number", "num", "no", "nr", "ref", "code", "token", "uid", "pid"];
#[rustfmt::skip]
const PERSON_WORDS: &[&str] = &[
    "customer", "cust", "user", "usr", "patient", "member", "person", "client", "account", "acct", "subscriber",
    "employee", "emp", "staff", "student", "citizen", "individual", "household", "holder", "cardholder", "applicant",
    "beneficiary", "borrower", "insured", "policyholder", "passenger", "guest", "donor", "voter", "taxpayer",
    "resident", "participant", "respondent", "subject", "contact", "buyer", "shopper", "visitor", "player", "driver",
];
const PERSON_ID_COLUMNS: &[&str] = &["ssn", "email", "emailaddress", "mrn", "nhsnumber", "nino", "sin", "tin", "npi"];

/// Lower-case words of a column name.
pub(crate) fn words(name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphabetic() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            if c.is_ascii_digit() {
                // `zip5`, `address2`: keep digits with the word before.
                if let Some(last) = out.last_mut() {
                    last.push(c);
                }
            }
            continue;
        }
        let prev = i.checked_sub(1).map(|j| chars[j]);
        let next = chars.get(i + 1).copied();
        let hump = c.is_uppercase()
            && (prev.is_some_and(char::is_lowercase)
                || (prev.is_some_and(char::is_uppercase) && next.is_some_and(char::is_lowercase)));
        if hump && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

impl ColumnHint {
    /// No hint at all: what [`crate::scan`] uses.
    pub const NONE: ColumnHint = ColumnHint {
        birth: false,
        postcode: false,
        person_name: false,
        version: false,
        identifier: false,
        person_identifier: false,
    };

    pub fn from_name(column_name: &str) -> ColumnHint {
        let w = words(column_name);
        let joined: String = w.concat();
        let has = |list: &[&str]| w.iter().any(|x| list.contains(&x.as_str()));
        let stem = |list: &[&str]| list.iter().any(|s| joined.contains(s));
        let person_word = has(PERSON_WORDS) || PERSON_WORDS.iter().any(|p| joined.starts_with(p));
        let id_last = w.last().is_some_and(|x| ID_WORDS.contains(&x.as_str()));
        let id_joined = ["id", "uuid", "guid"].iter().any(|s| joined.ends_with(s)) && person_word;
        let person_id_column =
            PERSON_ID_COLUMNS.contains(&joined.as_str()) || (w.len() == 2 && w[0] == "email" && w[1] == "address");
        let identifier = id_last || id_joined || person_id_column;
        ColumnHint {
            birth: has(BIRTH_WORDS) || stem(BIRTH_STEMS),
            postcode: has(POSTCODE_WORDS) || stem(POSTCODE_STEMS),
            person_name: (has(NAME_WORDS) || stem(&["firstname", "lastname", "fullname", "surname"]))
                && !has(THING_WORDS),
            version: has(VERSION_WORDS),
            identifier,
            person_identifier: person_id_column || (identifier && person_word),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_names() {
        assert_eq!(words("dateOfBirth"), ["date", "of", "birth"]);
        assert_eq!(words("ZIPCode"), ["zip", "code"]);
        assert_eq!(words("customer_id"), ["customer", "id"]);
        assert_eq!(words("Postal Code 2"), ["postal", "code2"]);
        assert_eq!(words("DOB"), ["dob"]);
        assert_eq!(words("zip5"), ["zip5"]);
    }

    #[test]
    fn hints() {
        for n in [
            "dob",
            "DOB",
            "birth_date",
            "dateOfBirth",
            "BirthDate",
            "born_on",
            "Geburtsdatum",
            "fecha_nacimiento",
            "date_naissance",
        ] {
            assert!(ColumnHint::from_name(n).birth, "{n}");
        }
        for n in ["order_date", "created_at", "adobe_id", "date"] {
            assert!(!ColumnHint::from_name(n).birth, "{n}");
        }
        for n in ["zip", "ZipCode", "postal_code", "postcode", "PLZ", "billing_zip", "zip5", "pin_code"] {
            assert!(ColumnHint::from_name(n).postcode, "{n}");
        }
        for n in ["zone", "code", "amount"] {
            assert!(!ColumnHint::from_name(n).postcode, "{n}");
        }
        for n in ["name", "first_name", "LastName", "surname", "full_name", "customer_name", "Vorname", "patientName"] {
            assert!(ColumnHint::from_name(n).person_name, "{n}");
        }
        for n in ["product_name", "company_name", "file_name", "username", "user_name", "hostname", "city"] {
            assert!(!ColumnHint::from_name(n).person_name, "{n}");
        }
        assert!(ColumnHint::from_name("app_version").version);
        let id = ColumnHint::from_name("customer_id");
        assert!(id.identifier && id.person_identifier);
        let id = ColumnHint::from_name("CustomerID");
        assert!(id.identifier && id.person_identifier);
        let order = ColumnHint::from_name("order_id");
        assert!(order.identifier && !order.person_identifier);
        assert!(ColumnHint::from_name("email").person_identifier);
        assert!(!ColumnHint::from_name("paid").identifier);
        assert_eq!(ColumnHint::from_name(""), ColumnHint::NONE);
    }
}
