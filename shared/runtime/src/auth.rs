//! Authentication and the principal model (DOMAIN.md §1).
//!
//! Every call carries `authorization: Bearer <jwt>`. Tokens are HS256 JWTs
//! signed with a key every service is configured with, so any service can
//! verify a token without asking another one. A token names a principal
//! (`sub`), its roles and, for unit-scoped roles, its unit.

use std::{
    collections::HashMap,
    fmt,
    path::Path,
    str::FromStr,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::Error;

const ISSUER: &str = "jixiao";

/// The ErrorInfo domain of every UNAUTHENTICATED answer, and of the host's
/// other refusals before a handler (role gate, calls in flight).
pub const AUTH_DOMAIN: &str = "jixiao.auth";

/// The roles of DOMAIN.md §1, plus `service` for calls between services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The efficiency office (市效能办): everything administrative.
    Office,
    /// An evaluation group member (评估小组).
    Evaluator,
    /// An inspector or efficiency supervisor (效能监督员).
    Inspector,
    /// An assessed unit (被评估单位); scoped to its unit.
    Unit,
    /// A data-provider unit (指标数据采集责任单位); scoped to its unit.
    Provider,
    /// A survey platform (调查平台).
    SurveyPlatform,
    /// A dashboard (看板).
    Viewer,
    /// Another Jixiao service calling on its own behalf (read-only lookups).
    Service,
}

impl Role {
    pub const ALL: [Role; 8] = [
        Role::Office,
        Role::Evaluator,
        Role::Inspector,
        Role::Unit,
        Role::Provider,
        Role::SurveyPlatform,
        Role::Viewer,
        Role::Service,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Office => "office",
            Role::Evaluator => "evaluator",
            Role::Inspector => "inspector",
            Role::Unit => "unit",
            Role::Provider => "provider",
            Role::SurveyPlatform => "survey_platform",
            Role::Viewer => "viewer",
            Role::Service => "service",
        }
    }

    /// Roles that act for one unit and need a `unit` claim.
    pub fn is_unit_scoped(self) -> bool {
        matches!(self, Role::Unit | Role::Provider)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}"))
    }
}

/// Who is calling: the verified content of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Token subject, e.g. "office", "siming", "platform-12345".
    pub subject: String,
    pub roles: Vec<Role>,
    /// The unit id (e.g. "siming") for unit-scoped roles.
    pub unit: Option<String>,
}

impl Principal {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Holds at least one of `roles`.
    pub fn has_any(&self, roles: &[Role]) -> bool {
        roles.iter().any(|r| self.has(*r))
    }

    /// PERMISSION_DENIED unless the principal holds one of `roles`.
    pub fn require(&self, roles: &[Role], action: &str) -> Result<(), Error> {
        if self.has_any(roles) {
            Ok(())
        } else {
            Err(Error::denied(format!(
                "{} may not {action}: it needs one of the roles {}",
                self.subject,
                roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }

    /// The unit a unit-scoped principal acts for. Verified tokens with a
    /// `unit` or `provider` role always name one; this refuses rather than
    /// letting a missing unit read as "no filter".
    pub fn own_unit(&self) -> Result<&str, Error> {
        self.unit
            .as_deref()
            .ok_or_else(|| Error::denied(format!("{} does not act for any unit", self.subject)))
    }

    /// True when the principal holds `role` for unit `unit_id`.
    pub fn acts_for(&self, role: Role, unit_id: &str) -> bool {
        self.has(role) && self.unit.as_deref() == Some(unit_id)
    }

    /// PERMISSION_DENIED unless the principal is the office or holds `role`
    /// for `unit_id`.
    pub fn require_office_or_unit(
        &self,
        role: Role,
        unit_id: &str,
        action: &str,
    ) -> Result<(), Error> {
        if self.has(Role::Office) || self.acts_for(role, unit_id) {
            Ok(())
        } else {
            Err(Error::denied(format!(
                "{} may not {action} for unit {unit_id}",
                self.subject
            )))
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unit: Option<String>,
    iss: String,
    iat: u64,
    exp: u64,
    /// Checked by the validation when present; `issue` never sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<serde_json::Value>,
}

/// Longest subject a token may carry: it is written into every audit record.
const MAX_SUBJECT: usize = 128;

/// Format characters that change how text around them displays without
/// showing themselves (bidirectional overrides and isolates, zero-width
/// characters): a subject with one could pass for another in an audit
/// trail.
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}'
    )
}

impl Claims {
    /// The principal these claims name, or why no minted token carries them.
    fn principal(&self) -> Result<Principal, String> {
        let sub = &self.sub;
        if sub.trim().is_empty() {
            return Err("a token needs a subject".into());
        }
        if sub.len() > MAX_SUBJECT
            || sub.trim() != sub
            || sub.chars().any(|c| c.is_control() || invisible(c))
        {
            return Err(format!(
                "the subject must be at most {MAX_SUBJECT} bytes of printable text without surrounding spaces"
            ));
        }
        if self.roles.is_empty() {
            return Err("a token needs at least one role".into());
        }
        let mut roles = Vec::with_capacity(self.roles.len());
        for r in &self.roles {
            let role: Role = r.parse()?;
            if roles.contains(&role) {
                return Err(format!("the role {role} is named twice"));
            }
            roles.push(role);
        }
        let scoped = roles.iter().any(|r| r.is_unit_scoped());
        match self.unit.as_deref() {
            // A unit beside other roles is allowed (a principal may hold
            // several); only the unit-scoped roles ever act on it.
            None if scoped => Err("the roles unit and provider need a unit".into()),
            Some(u) if !crate::names::valid_id(u) => Err(format!(
                "the unit {u:?} is not a unit id ({})",
                crate::names::ID_RULE
            )),
            unit => Ok(Principal {
                subject: sub.clone(),
                roles,
                unit: unit.map(str::to_string),
            }),
        }
    }
}

/// The shared signing key. Cloning is cheap.
#[derive(Clone)]
pub struct TokenKey(Arc<KeyInner>);

struct KeyInner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    verified: Mutex<HashMap<Box<str>, Verified>>,
}

/// How many verified tokens a key remembers, and the longest it remembers:
/// a dashboard or a platform sends the same token with every call, and
/// checking its signature and decoding its JSON anew each time was a tenth
/// of the aggregator's CPU per `GetStandings` (issue 22, `perf`). Longer
/// tokens are verified every time, so a caller cannot fill memory with
/// them.
const REMEMBERED_TOKENS: usize = 1024;
const REMEMBERED_LENGTH: usize = 2048;

/// A token that verified, by its exact text (signature included, so no
/// other text can match it), with the times that decide whether it still
/// would.
#[derive(Debug, Clone)]
struct Verified {
    principal: Principal,
    issued: u64,
    expires: u64,
}

impl Verified {
    /// Whether the token still passes the time checks of a full
    /// verification at `now` (seconds), with the same `leeway`.
    fn holds_at(&self, now: u64, leeway: u64) -> bool {
        self.last_second(leeway) >= now && self.issued <= now.saturating_add(leeway)
    }

    /// The last whole second in which the token still verifies.
    fn last_second(&self, leeway: u64) -> u64 {
        self.expires.saturating_add(leeway)
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// A key from secret bytes (at least 32).
    pub fn from_secret(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < 32 {
            return Err("the token key must have at least 32 bytes".into());
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 30;
        // A token not valid yet (nbf in the future) is refused like an
        // expired one.
        validation.validate_nbf = true;
        Ok(TokenKey(Arc::new(KeyInner {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            verified: Mutex::default(),
        })))
    }

    /// A fresh random key, hex-encoded.
    pub fn generate_hex() -> String {
        let bytes: [u8; 32] = rand::random();
        hex::encode(bytes)
    }

    /// Reads a hex key from `path`, creating the file with a fresh key when it
    /// does not exist (the embedded default: a newcomer needs no setup).
    /// Returns the key and whether it was created now.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), String> {
        let created = if path.exists() {
            false
        } else {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            write_private(path, &Self::generate_hex())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            true
        };
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok((Self::from_hex(text.trim())?, created))
    }

    pub fn from_hex(text: &str) -> Result<Self, String> {
        let bytes = hex::decode(text).map_err(|e| format!("the token key is not hex: {e}"))?;
        Self::from_secret(&bytes)
    }

    /// Mints a token valid for `ttl_secs`.
    pub fn issue(
        &self,
        subject: &str,
        roles: &[Role],
        unit: Option<&str>,
        ttl_secs: u64,
    ) -> Result<String, String> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: subject.to_string(),
            roles: roles.iter().map(|r| r.as_str().to_string()).collect(),
            unit: unit.map(str::to_string),
            iss: ISSUER.into(),
            iat: now,
            exp: now.saturating_add(ttl_secs),
            nbf: None,
        };
        claims.principal()?;
        self.sign(&claims)
    }

    /// Signs any claims as they are, without the checks of [`issue`]: for
    /// tests that show the verifier refuses what `issue` never makes.
    /// Holding the key already allows this.
    ///
    /// [`issue`]: TokenKey::issue
    pub fn sign_unchecked(&self, claims: &serde_json::Value) -> Result<String, String> {
        self.sign(claims)
    }

    fn sign(&self, claims: &impl Serialize) -> Result<String, String> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.0.encoding)
            .map_err(|e| e.to_string())
    }

    /// Verifies a bearer token and returns its principal. A correctly
    /// signed token is still refused unless [`issue`](TokenKey::issue) could
    /// have made it: a token that fails open (a unit role without a unit
    /// read as "every unit") is worse than no token.
    ///
    /// A token verified before is recognised by its text and only its
    /// times are checked again; an expired one is verified in full, and
    /// refused with the full check's reason.
    pub fn verify(&self, token: &str) -> Result<Principal, Error> {
        self.check(token).map(|v| v.principal)
    }

    /// Verifies a bearer token and says until when it holds: the end of
    /// its last second of validity, leeway included. A call that streams
    /// past it is ended by the host (a stream must not outlive its token).
    pub fn verify_until(&self, token: &str) -> Result<(Principal, SystemTime), Error> {
        let v = self.check(token)?;
        let secs = v.last_second(self.0.validation.leeway).saturating_add(1);
        // An `exp` past what the clock can hold lapses in 2106.
        let until = SystemTime::UNIX_EPOCH
            .checked_add(Duration::from_secs(secs))
            .unwrap_or(SystemTime::UNIX_EPOCH + Duration::from_secs(u32::MAX.into()));
        Ok((v.principal, until))
    }

    fn check(&self, token: &str) -> Result<Verified, Error> {
        let now = jsonwebtoken::get_current_timestamp();
        let leeway = self.0.validation.leeway;
        let remembered = token.len() <= REMEMBERED_LENGTH;
        if remembered
            && let Some(v) = self.remembered().get(token)
            && v.holds_at(now, leeway)
        {
            return Ok(v.clone());
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.0.decoding, &self.0.validation)
            .map_err(|e| {
                Error::Unauthenticated(format!("invalid token: {}", refusal(token, &e)))
            })?;
        let c = data.claims;
        if c.iat > c.exp || c.iat > now + leeway {
            return Err(Error::Unauthenticated(
                "invalid token: issued in the future or after it expires".into(),
            ));
        }
        let principal = c
            .principal()
            .map_err(|e| Error::Unauthenticated(format!("invalid token: {e}")))?;
        let verified = Verified {
            principal,
            issued: c.iat,
            expires: c.exp,
        };
        // A token with `nbf` is rare (`issue` never sets it): verified in
        // full every time rather than its rule kept twice.
        if remembered && c.nbf.is_none() {
            self.remember(token, verified.clone(), now);
        }
        Ok(verified)
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Verified>> {
        // A panic while holding the map leaves it whole (inserts and
        // removals only), so a poisoned lock is still usable.
        self.0
            .verified
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keeps `verified` for next time, first dropping expired tokens when
    /// the map is full, and every token if that frees nothing.
    fn remember(&self, token: &str, verified: Verified, now: u64) {
        let leeway = self.0.validation.leeway;
        let mut map = self.remembered();
        if map.len() >= REMEMBERED_TOKENS {
            map.retain(|_, v| v.holds_at(now, leeway));
            if map.len() >= REMEMBERED_TOKENS {
                map.clear();
            }
        }
        map.insert(token.into(), verified);
    }

    /// Verifies the value of an `authorization` header, and says until
    /// when the token holds (see [`verify_until`](TokenKey::verify_until)).
    pub fn verify_header(&self, header: Option<&str>) -> Result<(Principal, SystemTime), Error> {
        self.verify_until(bearer(header)?)
    }
}

/// Why `token` failed the library's checks, in words a caller can act on
/// and without the parser's internals (offsets, Rust type names).
fn refusal(token: &str, e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => "it has expired".into(),
        K::ImmatureSignature => "it is not valid yet (nbf)".into(),
        K::InvalidSignature => "its signature does not match this suite's key".into(),
        K::InvalidAlgorithm | K::MissingAlgorithm | K::InvalidAlgorithmName => {
            "it must be signed with HS256".into()
        }
        K::InvalidIssuer => format!("its issuer (iss) must be {ISSUER:?}"),
        K::InvalidAudience => "it names an audience (aud); the suite's tokens have none".into(),
        K::MissingRequiredClaim(claim) => format!("it has no {claim:?} claim"),
        K::InvalidClaimFormat(claim) => format!("its {claim:?} claim is malformed"),
        // The header is decoded first: a JSON error there is not the
        // claims' fault.
        K::Json(_) if jsonwebtoken::decode_header(token).is_err() => {
            "its header is not that of a JWT signed with HS256".into()
        }
        K::Json(_) => {
            "its claims are not those the suite issues (sub: text, roles: a list of role \
             names, unit: a unit id, iss: text, iat and exp: whole seconds)"
                .into()
        }
        _ => "it is not a JSON Web Token (three base64url parts joined by dots)".into(),
    }
}

/// The token of an `authorization` header.
fn bearer(header: Option<&str>) -> Result<&str, Error> {
    let header = header.ok_or_else(|| {
        Error::Unauthenticated(
            "missing authorization metadata: send `authorization: Bearer <token>`".into(),
        )
    })?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or_else(|| Error::Unauthenticated("authorization must be `Bearer <token>`".into()))?;
    Ok(token.trim())
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// The principal a request was authenticated as (put there by the host's
/// auth layer).
pub fn principal<T>(req: &tonic::Request<T>) -> Result<Principal, tonic::Status> {
    req.extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| tonic::Status::unauthenticated("the request was not authenticated"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TokenKey {
        TokenKey::from_hex(&TokenKey::generate_hex()).unwrap()
    }

    #[test]
    fn issued_tokens_verify_to_their_principal() {
        let k = key();
        let t = k
            .issue("siming", &[Role::Unit, Role::Provider], Some("siming"), 60)
            .unwrap();
        let (p, _) = k.verify_header(Some(&format!("Bearer {t}"))).unwrap();
        assert_eq!(p.subject, "siming");
        assert_eq!(p.roles, [Role::Unit, Role::Provider]);
        assert!(p.acts_for(Role::Unit, "siming"));
        assert!(!p.acts_for(Role::Unit, "huli"));
    }

    #[test]
    fn tokens_of_another_key_are_refused() {
        let t = key().issue("office", &[Role::Office], None, 60).unwrap();
        assert!(matches!(key().verify(&t), Err(Error::Unauthenticated(_))));
    }

    #[test]
    fn unit_roles_need_a_unit() {
        assert!(key().issue("x", &[Role::Unit], None, 60).is_err());
        assert!(key().issue("x", &[Role::Provider], Some(""), 60).is_err());
        assert!(
            key()
                .issue("x", &[Role::Viewer], Some("Bad Unit"), 60)
                .is_err()
        );
        assert!(key().issue("", &[Role::Office], None, 60).is_err());
    }

    #[test]
    fn signed_tokens_that_issue_never_makes_are_refused() {
        let k = key();
        let now = jsonwebtoken::get_current_timestamp();
        let claims = |sub: serde_json::Value, roles: serde_json::Value, unit: Option<&str>| {
            let mut c = serde_json::json!({"sub": sub, "roles": roles, "iss": "jixiao", "iat": now, "exp": now + 60});
            if let Some(u) = unit {
                c["unit"] = u.into();
            }
            c
        };
        let good = k
            .sign_unchecked(&claims(
                "siming".into(),
                serde_json::json!(["unit"]),
                Some("siming"),
            ))
            .unwrap();
        assert!(k.verify(&good).is_ok());
        for bad in [
            claims("siming".into(), serde_json::json!(["unit"]), None),
            claims("stats".into(), serde_json::json!(["provider"]), Some("")),
            claims("x".into(), serde_json::json!(["unit"]), Some("Not A Unit")),
            claims("".into(), serde_json::json!(["office"]), None),
            claims(" ".into(), serde_json::json!(["office"]), None),
            claims("a\nb".into(), serde_json::json!(["office"]), None),
            claims("x".repeat(129).into(), serde_json::json!(["office"]), None),
            claims("office".into(), serde_json::json!([]), None),
            claims("office".into(), serde_json::json!(["root"]), None),
            claims(
                "office".into(),
                serde_json::json!(["office", "office"]),
                None,
            ),
            claims("office".into(), serde_json::json!(["office"]), Some("")),
            claims(serde_json::json!(7), serde_json::json!(["office"]), None),
            serde_json::json!({"sub": "office", "roles": ["office"], "iss": "jixiao", "exp": now + 60}),
            serde_json::json!({"sub": "office", "roles": ["office"], "iss": "other", "iat": now, "exp": now + 60}),
            serde_json::json!({"sub": "office", "roles": ["office"], "iss": "jixiao", "iat": now + 3600, "exp": now + 7200}),
        ] {
            let t = k.sign_unchecked(&bad).unwrap();
            assert!(
                matches!(k.verify(&t), Err(Error::Unauthenticated(_))),
                "accepted {bad}"
            );
        }
    }

    #[test]
    fn a_remembered_token_still_expires() {
        let v = Verified {
            principal: Principal {
                subject: "wall".into(),
                roles: vec![Role::Viewer],
                unit: None,
            },
            issued: 1_000,
            expires: 2_000,
        };
        // The same bounds as the full check, leeway 30 s.
        assert!(v.holds_at(1_500, 30));
        assert!(v.holds_at(2_030, 30));
        assert!(!v.holds_at(2_031, 30));
        assert!(v.holds_at(970, 30));
        assert!(!v.holds_at(969, 30));
    }

    #[test]
    fn verified_tokens_are_remembered_and_recheck_their_times() {
        let k = key();
        let t = k.issue("wall", &[Role::Viewer], None, 60).unwrap();
        assert_eq!(k.verify(&t).unwrap().subject, "wall");
        assert!(k.remembered().contains_key(t.as_str()));
        // Remembered, yet past its time: the full check runs and refuses.
        let expired = k.issue("old", &[Role::Viewer], None, 0).unwrap();
        let now = jsonwebtoken::get_current_timestamp();
        let stale = Verified {
            principal: k.verify(&t).unwrap(),
            issued: now - 3_600,
            expires: now - 3_000,
        };
        k.remembered().insert(expired.as_str().into(), stale);
        let e = k.verify(&expired);
        assert!(e.is_ok(), "a 0 s token is still in its leeway: {e:?}");
        assert_eq!(
            e.unwrap().subject,
            "old",
            "verified in full, not taken from the map"
        );
        // A token the key never signed is never in the map.
        let forged = format!("{}x", &t[..t.len() - 1]);
        assert!(matches!(k.verify(&forged), Err(Error::Unauthenticated(_))));
    }

    /// The payload and signature of a token the key issued.
    fn t_payload(k: &TokenKey) -> String {
        let t = k.issue("office", &[Role::Office], None, 60).unwrap();
        t.split_once('.').unwrap().1.to_string()
    }

    #[test]
    fn refusals_say_what_is_wrong_without_the_parser_s_internals() {
        let k = key();
        let now = jsonwebtoken::get_current_timestamp();
        let signed = |c: serde_json::Value| k.sign_unchecked(&c).unwrap();
        let other = key().issue("office", &[Role::Office], None, 60).unwrap();
        let cases = [
            (
                signed(
                    serde_json::json!({"sub": "o", "roles": ["office"], "iss": "jixiao", "iat": now - 600, "exp": now - 300}),
                ),
                "it has expired",
            ),
            (other, "signature does not match"),
            (
                signed(
                    serde_json::json!({"sub": "o", "roles": "office", "iss": "jixiao", "iat": now, "exp": now + 60}),
                ),
                "claims are not those the suite issues",
            ),
            (
                signed(
                    serde_json::json!({"sub": "o", "roles": ["office"], "iss": "x", "iat": now, "exp": now + 60}),
                ),
                "issuer",
            ),
            (
                signed(
                    serde_json::json!({"roles": ["office"], "iss": "jixiao", "iat": now, "exp": now + 60}),
                ),
                "(sub: text, roles",
            ),
            (
                signed(
                    serde_json::json!({"sub": "o", "roles": ["office"], "iss": "jixiao", "aud": "x", "iat": now, "exp": now + 60}),
                ),
                "audience",
            ),
            (
                format!("eyJhbGciOiJub25lIn0.{}", t_payload(&k)),
                "header is not that of a JWT signed with HS256",
            ),
            ("a.b".to_string(), "not a JSON Web Token"),
            ("%%%.%%%.%%%".to_string(), "not a JSON Web Token"),
        ];
        for (token, says) in cases {
            let Err(Error::Unauthenticated(m)) = k.verify(&token) else {
                panic!("{token} was not refused");
            };
            assert!(m.starts_with("invalid token: "), "{m}");
            assert!(m.contains(says), "{m:?} should say {says:?}");
            for internal in ["line ", "column", "expected", "Error"] {
                assert!(!m.contains(internal), "{m:?} shows {internal:?}");
            }
        }
    }

    #[test]
    fn a_token_holds_until_the_end_of_its_leeway() {
        let k = key();
        let t = k.issue("wall", &[Role::Viewer], None, 60).unwrap();
        let exp = |t: &str| {
            let v = k.check(t).unwrap();
            v.expires
        };
        let secs = |at: SystemTime| at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        // Verified in full, then remembered: the same answer both times.
        for _ in 0..2 {
            let (p, until) = k.verify_until(&t).unwrap();
            assert_eq!(p.subject, "wall");
            assert_eq!(secs(until), exp(&t) + 30 + 1);
        }
        let far = k
            .sign_unchecked(&serde_json::json!({"sub": "x", "roles": ["viewer"], "iss": "jixiao", "iat": 0, "exp": u64::MAX}))
            .unwrap();
        let (_, until) = k.verify_until(&far).unwrap();
        assert_eq!(secs(until), u64::from(u32::MAX));
    }

    #[test]
    fn the_remembered_tokens_stay_bounded() {
        let k = key();
        for i in 0..REMEMBERED_TOKENS + 10 {
            let t = k
                .issue(&format!("s{i}"), &[Role::Viewer], None, 60)
                .unwrap();
            k.verify(&t).unwrap();
        }
        assert!(k.remembered().len() <= REMEMBERED_TOKENS);
        let long = k
            .issue(&"x".repeat(MAX_SUBJECT), &[Role::Viewer], None, 60)
            .unwrap();
        assert!(long.len() < REMEMBERED_LENGTH, "a long subject still fits");
    }

    #[test]
    fn missing_or_malformed_headers_are_unauthenticated() {
        let k = key();
        assert!(matches!(
            k.verify_header(None),
            Err(Error::Unauthenticated(_))
        ));
        assert!(matches!(
            k.verify_header(Some("Basic abc")),
            Err(Error::Unauthenticated(_))
        ));
    }
}
