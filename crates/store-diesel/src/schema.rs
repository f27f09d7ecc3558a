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
