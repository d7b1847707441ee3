//! NATS decentralized authentication made by a test, as `nsc` would make
//! it: an operator, its accounts and their users, each an nkey (ed25519),
//! bound by NATS JWT v2 tokens — the operator's signed by itself, an
//! account's by the operator, a user's by its account. A server configured
//! with [`Operator::server_config`] admits the users of the accounts it
//! preloads, through a `.creds` file ([`Account::user_creds`]).
//!
//! A token is `base64url(header).base64url(claims).base64url(signature)`,
//! unpadded, the signature the issuer's ed25519 signature of the first two
//! parts; the claims carry `jti`, `iat`, `iss` (the issuer's public key),
//! `name`, `sub` (the subject's public key) and a `nats` object with the
//! `type` and `version: 2`.

use std::sync::atomic::{AtomicU64, Ordering};

use nkeys::KeyPair;

/// An operator: the root of trust of a server in operator mode, with its
/// system account (which JetStream needs).
pub struct Operator {
    key: KeyPair,
    jwt: String,
    system: Account,
}

/// An account, signed by an operator (not necessarily the server's).
pub struct Account {
    key: KeyPair,
    jwt: String,
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        // One character per 6 bits present: 2, 3 or 4 for 1, 2 or 3 bytes.
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A JWT of `claims`, signed by `issuer`.
fn sign(issuer: &KeyPair, claims: &str) -> String {
    let head = format!(
        "{}.{}",
        base64url(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#),
        base64url(claims.as_bytes())
    );
    let signature = issuer.sign(head.as_bytes()).expect("sign the JWT");
    format!("{head}.{}", base64url(&signature))
}

/// The claims of a JWT about `subject`, issued by `issuer`, with the
/// `nats` object's JSON `nats`.
fn claims(issuer: &KeyPair, subject: &str, name: &str, nats: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let iat = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let jti = format!(
        "IPCXTEST{}X{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    format!(
        r#"{{"jti":"{jti}","iat":{iat},"iss":"{}","name":"{name}","sub":"{subject}","nats":{nats}}}"#,
        issuer.public_key()
    )
}

impl Operator {
    /// A new operator, with its self-signed JWT and its system account.
    pub fn new() -> Operator {
        let key = KeyPair::new_operator();
        let system = Operator::sign_account(&key, "SYS", false);
        let claims = claims(
            &key,
            &key.public_key(),
            "ipcx-test-operator",
            &format!(
                r#"{{"system_account":"{}","type":"operator","version":2}}"#,
                system.key.public_key()
            ),
        );
        let jwt = sign(&key, &claims);
        Operator { key, jwt, system }
    }

    /// A new account signed by `operator`, without limits (and with
    /// JetStream, without limits either, when `jetstream`).
    fn sign_account(operator: &KeyPair, name: &str, jetstream: bool) -> Account {
        let key = KeyPair::new_account();
        let js = if jetstream {
            r#","mem_storage":-1,"disk_storage":-1,"streams":-1,"consumer":-1"#
        } else {
            ""
        };
        let nats = format!(
            r#"{{"limits":{{"subs":-1,"data":-1,"payload":-1,"imports":-1,"exports":-1,"wildcards":true,"conn":-1,"leaf":-1{js}}},"default_permissions":{{"pub":{{}},"sub":{{}}}},"type":"account","version":2}}"#
        );
        let claims = claims(operator, &key.public_key(), name, &nats);
        Account {
            jwt: sign(operator, &claims),
            key,
        }
    }

    /// A new account under this operator, without limits, JetStream
    /// enabled (on a server that has it).
    pub fn account(&self, name: &str) -> Account {
        Operator::sign_account(&self.key, name, true)
    }

    /// The configuration of a server that trusts this operator and knows
    /// `accounts` (a memory resolver, preloaded). `dir` receives the
    /// operator's JWT.
    pub fn server_config(&self, dir: &std::path::Path, accounts: &[&Account]) -> String {
        let op = dir.join("operator.jwt");
        std::fs::write(&op, &self.jwt).expect("write the operator JWT");
        let preload: String = accounts
            .iter()
            .chain([&&self.system])
            .map(|a| format!("  {}: \"{}\"\n", a.key.public_key(), a.jwt))
            .collect();
        format!(
            "operator: \"{}\"\nsystem_account: {}\nresolver: MEMORY\nresolver_preload: {{\n{preload}}}\n",
            op.display(),
            self.system.key.public_key()
        )
    }
}

impl Account {
    /// The text of a `.creds` file for a new user of this account: the
    /// user's JWT, signed by the account, and the user's nkey seed.
    pub fn user_creds(&self, name: &str) -> String {
        let user = KeyPair::new_user();
        let nats =
            r#"{"pub":{},"sub":{},"subs":-1,"data":-1,"payload":-1,"type":"user","version":2}"#;
        let claims = claims(&self.key, &user.public_key(), name, nats);
        let jwt = sign(&self.key, &claims);
        let seed = user.seed().expect("the user's seed");
        format!(
            "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
             ************************* IMPORTANT *************************\n\
             NKEY Seed printed below can be used to sign and prove identity.\n\
             NKEYs are sensitive and should be treated as secrets.\n\n\
             -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
             *************************************************************\n"
        )
    }
}

/// A new user nkey: its seed (`SU…`, the content of an `nkey=` file) and
/// its public key (`U…`, what the server's `authorization` block lists).
pub fn user_nkey() -> (String, String) {
    let user = KeyPair::new_user();
    (user.seed().expect("the user's seed"), user.public_key())
}

#[test]
fn base64url_matches_known_values() {
    assert_eq!(base64url(b""), "");
    assert_eq!(base64url(b"f"), "Zg");
    assert_eq!(base64url(b"fo"), "Zm8");
    assert_eq!(base64url(b"foo"), "Zm9v");
    assert_eq!(base64url(b"foob"), "Zm9vYg");
    assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
}

/// A fresh directory for a test's key files, removed on drop.
pub struct KeyDir(pub std::path::PathBuf);

impl KeyDir {
    /// Creates it, named from `tag`, open to its owner only.
    pub fn new(tag: &str) -> KeyDir {
        use std::os::unix::fs::DirBuilderExt;
        let d = std::env::temp_dir().join(super::unique(tag));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&d)
            .expect("create the key directory");
        KeyDir(d)
    }

    /// Writes `text` to the file `name` with permission bits `mode`;
    /// returns its path.
    pub fn write(&self, name: &str, text: &str, mode: u32) -> String {
        use std::os::unix::fs::PermissionsExt;
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write a key file");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        p.display().to_string()
    }
}

impl Drop for KeyDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
