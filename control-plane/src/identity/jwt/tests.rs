use super::*;

const SUBJECT: &str = "spiffe://example.org/ns/shop/sa/orders";
const AUDIENCE: &str = "spiffe://example.org/ns/shop/sa/payments";
const NOW: i64 = 1_700_000_000;

fn claims() -> JwtSvidClaims {
    JwtSvidClaims::new(
        SUBJECT,
        vec![AUDIENCE.to_owned()],
        NOW,
        Duration::from_secs(300),
    )
}

fn key_and_set() -> (SigningKey, Jwks) {
    let key = SigningKey::generate().unwrap();
    let jwks = Jwks::new([key.public_jwk()]);
    (key, jwks)
}

/// A token with arbitrary header and claims JSON, signed by `key`.
fn forge(key: &SigningKey, header: &str, claims: &str) -> String {
    key.sign_compact(header.as_bytes(), claims.as_bytes())
        .unwrap()
}

fn encode_json(value: &serde_json::Value) -> String {
    BASE64URL.encode(value.to_string())
}

#[test]
fn minted_token_verifies_and_returns_its_claims() {
    let (key, jwks) = key_and_set();
    let token = key.mint(&claims()).unwrap();

    assert_eq!(verify(&token, &jwks, AUDIENCE, NOW).unwrap(), claims());
}

#[test]
fn minted_header_names_es256_the_key_and_jwt() {
    let (key, _) = key_and_set();
    let token = key.mint(&claims()).unwrap();

    let header = BASE64URL.decode(token.split('.').next().unwrap()).unwrap();
    let expected = format!(r#"{{"alg":"ES256","kid":"{}","typ":"JWT"}}"#, key.kid());
    assert_eq!(String::from_utf8(header).unwrap(), expected);
}

#[test]
fn signature_is_sixty_four_bytes_of_r_and_s() {
    let (key, _) = key_and_set();
    let token = key.mint(&claims()).unwrap();

    let signature = BASE64URL.decode(token.rsplit('.').next().unwrap()).unwrap();
    assert_eq!(signature.len(), 64);
}

#[test]
fn tampered_payload_is_rejected() {
    let (key, jwks) = key_and_set();
    let token = key.mint(&claims()).unwrap();
    let mut segments: Vec<&str> = token.split('.').collect();

    let mut altered = claims();
    altered.sub = "spiffe://example.org/ns/shop/sa/admin".to_owned();
    let altered = BASE64URL.encode(serde_json::to_vec(&altered).unwrap());
    segments[1] = &altered;

    let error = verify(&segments.join("."), &jwks, AUDIENCE, NOW).unwrap_err();
    assert!(matches!(error, JwtError::BadSignature), "{error}");
}

#[test]
fn unknown_kid_is_rejected() {
    let (key, _) = key_and_set();
    let (_, other_set) = key_and_set();
    let token = key.mint(&claims()).unwrap();

    let error = verify(&token, &other_set, AUDIENCE, NOW).unwrap_err();
    assert!(matches!(error, JwtError::UnknownKey), "{error}");
}

#[test]
fn token_naming_a_known_kid_but_signed_by_another_key_is_rejected() {
    let (trusted, jwks) = key_and_set();
    let (intruder, _) = key_and_set();
    let header = format!(r#"{{"alg":"ES256","kid":"{}"}}"#, trusted.kid());
    let token = forge(
        &intruder,
        &header,
        &serde_json::to_string(&claims()).unwrap(),
    );

    let error = verify(&token, &jwks, AUDIENCE, NOW).unwrap_err();
    assert!(matches!(error, JwtError::BadSignature), "{error}");
}

#[test]
fn expired_token_is_rejected() {
    let (key, jwks) = key_and_set();
    let token = key.mint(&claims()).unwrap();
    let after_leeway = claims().exp + EXPIRY_LEEWAY_SECS;

    let error = verify(&token, &jwks, AUDIENCE, after_leeway).unwrap_err();
    assert!(matches!(error, JwtError::Expired { .. }), "{error}");
}

#[test]
fn token_just_past_exp_is_accepted_within_the_leeway() {
    let (key, jwks) = key_and_set();
    let token = key.mint(&claims()).unwrap();
    let within_leeway = claims().exp + EXPIRY_LEEWAY_SECS - 1;

    assert!(verify(&token, &jwks, AUDIENCE, within_leeway).is_ok());
}

#[test]
fn wrong_audience_is_rejected() {
    let (key, jwks) = key_and_set();
    let token = key.mint(&claims()).unwrap();

    let error = verify(&token, &jwks, "spiffe://example.org/other", NOW).unwrap_err();
    assert!(matches!(error, JwtError::WrongAudience { .. }), "{error}");
}

#[test]
fn any_of_several_audiences_is_accepted() {
    let (key, jwks) = key_and_set();
    let mut several = claims();
    several.aud = vec!["first".to_owned(), AUDIENCE.to_owned()];
    let token = key.mint(&several).unwrap();

    assert_eq!(verify(&token, &jwks, AUDIENCE, NOW).unwrap().aud.len(), 2);
}

#[test]
fn alg_none_is_refused() {
    let (key, jwks) = key_and_set();
    let header = encode_json(&serde_json::json!({"alg": "none", "kid": key.kid()}));
    let claims = BASE64URL.encode(serde_json::to_vec(&claims()).unwrap());
    let token = format!("{header}.{claims}.");

    let error = verify(&token, &jwks, AUDIENCE, NOW).unwrap_err();
    assert!(matches!(error, JwtError::UnsupportedAlgorithm), "{error}");
}

#[test]
fn algorithms_other_than_es256_are_refused_even_when_signed() {
    let (key, jwks) = key_and_set();
    let body = serde_json::to_string(&claims()).unwrap();

    for alg in ["HS256", "RS256", "ES384", "es256"] {
        let header = format!(r#"{{"alg":"{alg}","kid":"{}"}}"#, key.kid());
        let error = verify(&forge(&key, &header, &body), &jwks, AUDIENCE, NOW).unwrap_err();
        assert!(
            matches!(error, JwtError::UnsupportedAlgorithm),
            "{alg}: {error}"
        );
    }
}

#[test]
fn critical_header_extensions_are_refused() {
    let (key, jwks) = key_and_set();
    let header = format!(r#"{{"alg":"ES256","kid":"{}","crit":["exp"]}}"#, key.kid());
    let token = forge(&key, &header, &serde_json::to_string(&claims()).unwrap());

    let error = verify(&token, &jwks, AUDIENCE, NOW).unwrap_err();
    assert!(matches!(error, JwtError::CriticalExtension), "{error}");
}

#[test]
fn subject_that_is_not_a_spiffe_id_is_refused_by_mint_and_verify() {
    let (key, jwks) = key_and_set();
    let mut bad = claims();
    bad.sub = "https://example.org/orders".to_owned();

    assert!(matches!(
        key.mint(&bad),
        Err(JwtError::InvalidSubject { .. })
    ));
    let header = format!(r#"{{"alg":"ES256","kid":"{}"}}"#, key.kid());
    let token = forge(&key, &header, &serde_json::to_string(&bad).unwrap());
    let error = verify(&token, &jwks, AUDIENCE, NOW).unwrap_err();
    assert!(matches!(error, JwtError::InvalidSubject { .. }), "{error}");
}

#[test]
fn mint_refuses_claims_without_audience_or_lifetime() {
    let (key, _) = key_and_set();
    let mut no_audience = claims();
    no_audience.aud.clear();
    let mut no_lifetime = claims();
    no_lifetime.exp = no_lifetime.iat;

    assert!(matches!(
        key.mint(&no_audience),
        Err(JwtError::InvalidClaims(_))
    ));
    assert!(matches!(
        key.mint(&no_lifetime),
        Err(JwtError::InvalidClaims(_))
    ));
}

#[test]
fn oversized_token_is_rejected_before_parsing() {
    let (_, jwks) = key_and_set();
    let token = "a".repeat(MAX_TOKEN_BYTES + 1);

    let error = verify(&token, &jwks, AUDIENCE, NOW).unwrap_err();
    assert!(matches!(error, JwtError::TooLarge { .. }), "{error}");
}

#[test]
fn tokens_without_three_segments_are_malformed() {
    let (key, jwks) = key_and_set();
    let token = key.mint(&claims()).unwrap();

    for broken in ["", "a.b", &format!("{token}.extra"), "!!.e30.AA"] {
        let error = verify(broken, &jwks, AUDIENCE, NOW).unwrap_err();
        assert!(matches!(error, JwtError::Malformed(_)), "{error}");
    }
}

#[test]
fn error_messages_do_not_quote_the_token() {
    let (key, jwks) = key_and_set();
    let token = key.mint(&claims()).unwrap();
    let header = format!(r#"{{"alg":"ES256","kid":"{}"}}"#, key.kid());
    let wrong_types = forge(&key, &header, r#"{"sub":"secret-looking-value","exp":"x"}"#);

    let message = verify(&wrong_types, &jwks, AUDIENCE, NOW)
        .unwrap_err()
        .to_string();
    assert!(!message.contains("secret-looking-value"), "{message}");
    let message = verify(&format!("{token}x"), &jwks, AUDIENCE, NOW)
        .unwrap_err()
        .to_string();
    assert!(
        !message.contains(token.rsplit('.').next().unwrap()),
        "{message}"
    );
}

#[test]
fn jwk_coordinates_decode_to_the_public_point() {
    let (key, _) = key_and_set();
    let jwk = key.public_jwk();

    assert_eq!(jwk.public_point().unwrap(), key.pair.public_key().as_ref());
    assert_eq!((jwk.kty.as_str(), jwk.crv.as_str()), ("EC", "P-256"));
    assert_eq!((jwk.key_use.as_str(), jwk.alg.as_str()), ("sig", "ES256"));
    assert!(!jwk.x.contains('=') && !jwk.y.contains('='));
}

#[test]
fn kid_is_the_thumbprint_and_stable_across_pkcs8() {
    let (key, _) = key_and_set();
    let reloaded = SigningKey::from_pkcs8(&key.to_pkcs8()).unwrap();

    assert_eq!(reloaded.kid(), key.kid());
    assert_eq!(key.kid(), key.public_jwk().thumbprint());
    assert_eq!(key.kid().len(), 43);
}

#[test]
fn reloaded_key_signs_tokens_the_old_jwk_verifies() {
    let (key, jwks) = key_and_set();
    let reloaded = SigningKey::from_pkcs8(&key.to_pkcs8()).unwrap();

    let token = reloaded.mint(&claims()).unwrap();
    assert!(verify(&token, &jwks, AUDIENCE, NOW).is_ok());
}

#[test]
fn garbage_pkcs8_is_refused() {
    let error = SigningKey::from_pkcs8(&SecretBytes::new(vec![0x30, 0x03, 0x02, 0x01, 0x00]));

    assert!(matches!(error, Err(JwtError::MalformedKey)));
}

#[test]
fn debug_prints_no_key_material() {
    let (key, _) = key_and_set();
    let pkcs8 = key.to_pkcs8();
    let shown = format!("{key:?}");

    assert_eq!(shown, format!("SigningKey {{ kid: {:?}, .. }}", key.kid()));
    assert!(!shown.contains(&BASE64URL.encode(pkcs8.expose())));
    assert!(!shown.contains(&hex::encode(pkcs8.expose())));
}

#[test]
fn audience_is_a_string_when_single_and_an_array_when_several() {
    let mut value = serde_json::to_value(claims()).unwrap();
    assert_eq!(value["aud"], serde_json::json!(AUDIENCE));
    assert!(value.get("jti").is_none());

    value["aud"] = serde_json::json!(["a", "b"]);
    let several: JwtSvidClaims = serde_json::from_value(value).unwrap();
    assert_eq!(several.aud, ["a", "b"]);
    assert_eq!(
        serde_json::to_value(&several).unwrap()["aud"],
        serde_json::json!(["a", "b"])
    );
}

#[test]
fn jwks_round_trips_through_json() {
    let keys = [
        SigningKey::generate().unwrap(),
        SigningKey::generate().unwrap(),
    ];
    let jwks: Jwks = keys.iter().map(SigningKey::public_jwk).collect();

    let text = jwks.to_json();
    assert!(
        text.starts_with(r#"{"keys":[{"kty":"EC","crv":"P-256","#),
        "{text}"
    );
    assert_eq!(Jwks::from_json(&text).unwrap(), jwks);
    assert!(jwks.find(keys[1].kid()).is_some());
}

#[test]
fn jwk_of_another_key_type_cannot_verify() {
    let (key, mut jwks) = key_and_set();
    jwks.keys[0].crv = "P-384".to_owned();
    let token = key.mint(&claims()).unwrap();

    let error = verify(&token, &jwks, AUDIENCE, NOW).unwrap_err();
    assert!(matches!(error, JwtError::MalformedJwk { .. }), "{error}");
}
