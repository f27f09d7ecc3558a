//! The diesel view of the tables, written by hand to match `migrations/*/` (the two migration
//! directories hold the same schema, so one `table!` serves both backends).

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        alg -> Text,
        created_at -> BigInt,
        activates_at -> BigInt,
        public_jwk -> Text,
        private_jwe -> Text,
    }
}

diesel::table! {
    clients (client_id) {
        client_id -> Text,
        status -> Text,
        status_reason -> Nullable<Text>,
        org_id -> Text,
        org_name -> Text,
        software_id -> Text,
        directory -> Text,
        purpose -> Text,
        risk_tier -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        expires_at -> Nullable<BigInt>,
        last_used_at -> Nullable<BigInt>,
        registration_token_hash -> Text,
        ssa_jti -> Nullable<Text>,
        transport_cert_subject -> Text,
        metadata -> Text,
        tokens_not_before -> Nullable<BigInt>,
    }
}

diesel::table! {
    revoked_tokens (jti) {
        jti -> Text,
        client_id -> Text,
        expires_at -> BigInt,
        revoked_at -> BigInt,
    }
}

diesel::table! {
    client_scopes (client_id, scope) {
        client_id -> Text,
        position -> Integer,
        scope -> Text,
        state -> Text,
        rule -> Text,
        decided_at -> BigInt,
        reason -> Nullable<Text>,
    }
}

diesel::table! {
    audit_log (seq) {
        seq -> BigInt,
        at -> BigInt,
        kind -> Text,
        actor -> Text,
        client_id -> Nullable<Text>,
        data -> Text,
        prev_hash -> Text,
        hash -> Text,
    }
}

diesel::table! {
    locks (name) {
        name -> Text,
        holder -> Text,
        expires_at -> BigInt,
    }
}
