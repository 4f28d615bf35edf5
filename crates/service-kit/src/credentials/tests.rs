//! Loading, authenticating and reloading credentials.

use super::*;

#[derive(Debug, Clone, PartialEq, Eq)]
enum TestScope {
    Read,
    Admin,
}

impl Scope for TestScope {
    fn parse(text: &str) -> Result<Self, String> {
        match text {
            "read" => Ok(Self::Read),
            "admin" => Ok(Self::Admin),
            _ => Err("unknown scope".into()),
        }
    }

    fn admin() -> Self {
        Self::Admin
    }
}

fn load(text: &str, dir: &Path) -> Result<Credentials<TestScope>, String> {
    let path = dir.join("credentials.toml");
    std::fs::write(&path, text).unwrap();
    Credentials::load(Some(&path), None)
}

#[test]
fn tokens_by_hash_or_file_authenticate_their_credential_only() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("reader-token"), "reader-secret\n").unwrap();
    let text = format!(
        "[[credential]]\nname = \"admin\"\ntoken_sha256 = \"{}\"\nscopes = [\"admin\"]\n\n\
         [[credential]]\nname = \"reader\"\ntoken_file = \"reader-token\"\nscopes = [\"read\"]\n",
        token_sha256_hex("admin-secret")
    );
    let creds = load(&text, dir.path()).unwrap();
    let who = |h: &str| match creds.authenticate(Some(h)) {
        Authentication::Known(c) => Some(c.name.clone()),
        Authentication::Unknown => None,
        Authentication::Open => panic!("open"),
    };
    assert_eq!(who("Bearer admin-secret").as_deref(), Some("admin"));
    assert_eq!(who("bearer reader-secret").as_deref(), Some("reader"));
    assert_eq!(who("Bearer reader-secret\n"), None);
    assert_eq!(who("Bearer admin-secreT"), None);
    assert_eq!(who("Basic admin-secret"), None);
    assert_eq!(who("admin-secret"), None);
    assert!(matches!(creds.authenticate(None), Authentication::Unknown));
    assert!(matches!(
        Credentials::<TestScope>::none().authenticate(None),
        Authentication::Open
    ));
}

#[test]
fn bearer_tokens_must_match_exactly() {
    let creds = Credentials::<TestScope>::load(None, Some("s3cret")).unwrap();
    let known = |h: &str| matches!(creds.authenticate(Some(h)), Authentication::Known(_));
    assert!(known("Bearer s3cret"));
    assert!(known("bearer s3cret"));
    for wrong in [
        "Bearer s3creT",
        "Bearer s3cre",
        "Bearer s3cret ",
        "Bearer  s3cret",
        "s3cret",
        "Basic s3cret",
        "",
    ] {
        assert!(!known(wrong), "{wrong:?}");
    }
    assert!(matches!(creds.authenticate(None), Authentication::Unknown));
}

#[test]
fn an_s3_key_pair_stands_alone_or_beside_a_token() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.secret"), "file-secret\n").unwrap();
    let hash = token_sha256_hex("t");
    let text = format!(
        "[[credential]]\nname = \"a\"\naccess_key_id = \"AK1\"\nsecret_access_key = \"s1\"\nscopes = [\"read\"]\n\
         [[credential]]\nname = \"b\"\ntoken_sha256 = \"{hash}\"\naccess_key_id = \"AK2\"\nsecret_access_key_file = \"b.secret\"\nscopes = [\"read\"]\n"
    );
    let creds = load(&text, dir.path()).unwrap();
    let a = creds.by_access_key("AK1").unwrap();
    assert_eq!(
        (a.name.as_str(), a.secret_access_key().unwrap().expose()),
        ("a", "s1")
    );
    let b = creds.by_access_key("AK2").unwrap();
    assert_eq!(b.secret_access_key().unwrap().expose(), "file-secret");
    assert!(creds.by_access_key("AK3").is_none());
    assert!(
        matches!(creds.authenticate(Some("Bearer t")), Authentication::Known(c) if c.name == "b")
    );
    assert!(
        !format!("{creds:?}").contains("s1"),
        "secrets stay out of Debug"
    );
}

#[test]
fn a_broken_file_is_refused_naming_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let hash = token_sha256_hex("t");
    for (text, needle) in [
        ("[[credential]]\nname = \"a\"\nscopes = [\"read\"]\n", "needs a secret"),
        (
            &format!("[[credential]]\nname = \"a\"\ntoken_sha256 = \"{hash}\"\nscopes = [\"write\"]\n"),
            "scope \"write\"",
        ),
        (
            "[[credential]]\nname = \"a\"\ntoken_sha256 = \"abc\"\nscopes = [\"read\"]\n",
            "64 hex digits",
        ),
        (
            &format!("[[credential]]\nname = \"a\"\ntoken_sha256 = \"{hash}\"\nscopes = []\n"),
            "no scopes",
        ),
        (
            &format!("[[credential]]\nname = \"a\"\ntoken_sha256 = \"{hash}\"\nscopes = [\"read\"]\n[[credential]]\nname = \"a\"\ntoken_sha256 = \"{hash}\"\nscopes = [\"read\"]\n"),
            "used twice",
        ),
        (
            &format!("[[credential]]\nname = \"a\"\ntoken_sha256 = \"{hash}\"\nscopes = [\"read\"]\nsecret = 1\n"),
            "secret",
        ),
        ("[[credential]]\nname = \"a\"\ntoken_file = \"missing\"\nscopes = [\"read\"]\n", "cannot read"),
        ("[[credential]]\nname = \"a\"\naccess_key_id = \"K\"\nscopes = [\"read\"]\n", "access_key_id needs secret_access_key"),
        ("[[credential]]\nname = \"a\"\nsecret_access_key = \"s\"\nscopes = [\"read\"]\n", "needs its access_key_id"),
        ("[[credential]]\nname = \"a\"\naccess_key_id = \"K K\"\nsecret_access_key = \"s\"\nscopes = [\"read\"]\n", "letters, digits"),
        ("[[credential]]\nname = \"a\"\naccess_key_id = \"K\"\nsecret_access_key = \"s\"\nscopes = [\"read\"]\n[[credential]]\nname = \"b\"\naccess_key_id = \"K\"\nsecret_access_key = \"t\"\nscopes = [\"read\"]\n", "access_key_id is used twice"),
    ] {
        let err = load(text, dir.path()).unwrap_err();
        assert!(err.contains(needle), "{needle:?} not in {err}");
        assert!(!err.contains(&hash), "the hash leaked: {err}");
    }
}

#[test]
fn the_legacy_token_is_one_admin_credential() {
    let creds = Credentials::<TestScope>::load(None, Some("legacy")).unwrap();
    match creds.authenticate(Some("Bearer legacy")) {
        Authentication::Known(c) => {
            assert_eq!(c.name, "auth_token");
            assert_eq!(c.scopes, vec![TestScope::Admin]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_reload_swaps_the_credentials_and_a_broken_file_keeps_the_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials.toml");
    let entry = |token: &str| {
        format!(
            "[[credential]]\nname = \"c\"\ntoken_sha256 = \"{}\"\nscopes = [\"read\"]\n",
            token_sha256_hex(token)
        )
    };
    std::fs::write(&path, entry("old")).unwrap();
    let store = CredentialStore::<TestScope>::open(Some(path.clone()), None).unwrap();
    let known = |store: &CredentialStore<TestScope>, token: &str| {
        matches!(
            store
                .current()
                .authenticate(Some(&format!("Bearer {token}"))),
            Authentication::Known(_)
        )
    };
    assert!(known(&store, "old"));
    std::fs::write(&path, entry("new")).unwrap();
    assert_eq!(store.reload(), Ok(1));
    assert!(known(&store, "new") && !known(&store, "old"));
    std::fs::write(&path, "not toml [").unwrap();
    assert!(store.reload().is_err());
    assert!(
        known(&store, "new"),
        "a broken file replaced the credentials"
    );
}
